/**
 * HTTP-date (RFC 9110 §5.6.7): a strict parser for the three formats a
 * recipient must accept — IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
 * the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
 * (`Sun Nov  6 08:49:37 1994`) — and the formatter for IMF-fixdate.
 * `Date.parse` is not used: it accepts far more than HTTP-date (and what it
 * accepts differs between engines), so a conditional request with a bogus
 * date could be read as a real one.
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/
const RFC850 = /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/
const ASCTIME = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/

/** Milliseconds since the epoch, or undefined when a field is out of range or the weekday is wrong. */
const build = (year: number, month: string, day: number, h: number, m: number, s: number, weekday: number): number | undefined => {
  const mon = MONTHS.indexOf(month)
  if (h > 23 || m > 59 || s > 60 || day < 1) return undefined
  const millis = Date.UTC(year, mon, day, h, m, Math.min(s, 59))
  const date = new Date(millis)
  if (date.getUTCDate() !== day || date.getUTCMonth() !== mon) return undefined // e.g. 31 Feb
  if (date.getUTCDay() !== weekday) return undefined
  return millis
}

/**
 * Parses an HTTP-date; returns milliseconds since the epoch, or undefined
 * when the text is not an HTTP-date (the caller then ignores the header, as
 * RFC 9110 §13.1.3 says).
 */
export const parse = (text: string): number | undefined => {
  const value = text.trim()
  let m = IMF_FIXDATE.exec(value)
  if (m !== null) return build(Number(m[4]), m[3]!, Number(m[2]), Number(m[5]), Number(m[6]), Number(m[7]), DAYS.indexOf(m[1]!))
  m = RFC850.exec(value)
  if (m !== null) {
    // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century
    const yy = Number(m[4])
    const thisYear = new Date().getUTCFullYear()
    let year = Math.floor(thisYear / 100) * 100 + yy
    if (year > thisYear + 50) year -= 100
    return build(year, m[3]!, Number(m[2]), Number(m[5]), Number(m[6]), Number(m[7]), LONG_DAYS.indexOf(m[1]!))
  }
  m = ASCTIME.exec(value)
  if (m !== null) return build(Number(m[7]), m[2]!, Number(m[3]!.trim()), Number(m[4]), Number(m[5]), Number(m[6]), DAYS.indexOf(m[1]!))
  return undefined
}

/** Formats milliseconds since the epoch as IMF-fixdate. */
export const format = (millis: number): string => new Date(millis).toUTCString()
