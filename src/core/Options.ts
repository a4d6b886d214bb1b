/**
 * Component options, declared once (Cowboy's options map and Warp's Settings,
 * as an Effect Schema): a component lists its options with `option(schema,
 * description, default)`, and `declare` makes of them the schema that callers
 * and the service table give values by (every key may be left out), the
 * defaults (read back from the fields' annotations, so each is written once),
 * and `resolve`, which fills them in. The same schema validates the table,
 * feeds `layerConfig` through Effect's Config, and the docs' tables are
 * checked against it. One duration type everywhere: a number of milliseconds
 * or text such as "10 seconds".
 */
import { Config, ConfigProvider, Duration as EffectDuration, Effect, Option, Schema, SchemaAST } from "effect"

/** Text that Effect's own Duration parser reads as a finite, non-negative duration ("500 millis", "1 second", "2 hours"...). */
const DurationText = Schema.String.check(
  Schema.makeFilter((text: string) => {
    const parsed = EffectDuration.fromInput(text as EffectDuration.Input)
    return Option.isSome(parsed) && EffectDuration.isFinite(parsed.value) && EffectDuration.toMillis(parsed.value) >= 0
  }, {
    message: "a duration such as \"500 millis\", \"1 second\", \"10 seconds\", \"5 minutes\" or \"2 hours\" (units: nanos, micros, millis, seconds, minutes, hours, days, weeks)"
  })
)

/** A duration: milliseconds as a number, or text such as "10 seconds". */
export const Duration = Schema.Union([Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)), DurationText])
export type Duration = typeof Duration.Type

/** A `Duration` option's value as Effect's Duration. */
export const toDuration = (d: Duration): EffectDuration.Duration => EffectDuration.fromInputUnsafe(d as EffectDuration.Input)

/** A `Duration` option's value in milliseconds. */
export const millis = (d: Duration): number => EffectDuration.toMillis(toDuration(d))

/** An integer above 0. */
export const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

/** An integer of 0 or more. */
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** Marks, in the type only, an option that has a default. */
export interface HasDefault {
  readonly "~hasDefault": true
}

/** An option without a default (absent means "not set"). */
export function option<S extends Schema.Top>(schema: S, description: string): Schema.optionalKey<S>
/** An option with its default. */
export function option<S extends Schema.Top>(schema: S, description: string, defaultValue: S["Type"]): Schema.optionalKey<S> & HasDefault
export function option<S extends Schema.Top>(schema: S, description: string, defaultValue?: S["Type"]) {
  return Schema.optionalKey(schema.annotate(defaultValue === undefined ? { description } : { description, default: defaultValue }))
}

type Fields = Schema.Struct.Fields

/** The options with every default filled in (keys without a default stay optional). */
export type Resolved<F extends Fields> =
  & Schema.Struct<F>["Type"]
  & { readonly [K in keyof F as F[K] extends HasDefault ? K : never]-?: F[K] extends Schema.optionalKey<infer S> ? S["Type"] : never }

/** A component's declared options. */
export interface Declared<F extends Fields> {
  /** The options as callers and tables give them: every key may be left out. */
  readonly schema: Schema.Struct<F>
  /** Each option's default, read from its field. */
  readonly defaults: Readonly<Record<string, unknown>>
  /** Each option's description, read from its field (the docs' tables are checked against these). */
  readonly descriptions: Readonly<Record<string, string>>
  /** Fills in the defaults (a key set to undefined counts as left out). */
  readonly resolve: (input?: Schema.Struct<F>["Type"]) => Resolved<F>
}

const annotationsOf = (field: { readonly ast: SchemaAST.AST }): Record<string, unknown> => (SchemaAST.resolve(field.ast) ?? {}) as Record<string, unknown>

/** Declares a component's options from their fields (made with `option`). */
export const declare = <F extends Fields>(fields: F): Declared<F> => {
  const defaults: Record<string, unknown> = {}
  const descriptions: Record<string, string> = {}
  for (const [key, field] of Object.entries(fields)) {
    const annotations = annotationsOf(field)
    if ("default" in annotations) defaults[key] = annotations["default"]
    if (typeof annotations["description"] === "string") descriptions[key] = annotations["description"]
  }
  return {
    schema: Schema.Struct(fields),
    defaults,
    descriptions,
    resolve: (input) => {
      const out: Record<string, unknown> = { ...defaults }
      if (input !== undefined) for (const [k, v] of Object.entries(input)) if (v !== undefined) out[k] = v
      return out as Resolved<F>
    }
  }
}

/** A default as the docs show it (text as it is written in a table, other values as JSON). */
const showDefault = (value: unknown): string => (value === undefined ? "—" : typeof value === "string" ? `\`"${value}"\`` : `\`${JSON.stringify(value)}\``)

/** The options as a Markdown table (key, default, meaning): the docs' tables are generated from the declarations. */
export const markdown = (declared: Declared<Fields>): string =>
  [
    "| key | default | meaning |",
    "|---|---|---|",
    ...Object.keys(declared.schema.fields).map((key) =>
      `| \`${key}\` | ${showDefault(declared.defaults[key])} | ${(declared.descriptions[key] ?? "").replaceAll("|", "\\|")} |`
    )
  ].join("\n")

/**
 * Reads options from Effect's Config (the current provider), under `prefix` when given, with keys in
 * CONSTANT_CASE as environment variables are written: `maxConnections` under `WEB` is `WEB_MAX_CONNECTIONS`.
 */
export const fromConfig = <S extends Schema.Top>(schema: S, prefix?: string): Effect.Effect<S["Type"], Config.ConfigError> =>
  Effect.flatMap(
    Effect.service(ConfigProvider.ConfigProvider),
    (provider) => Config.schema(schema as unknown as Schema.Codec<S["Type"], unknown>, prefix).parse(ConfigProvider.constantCase(provider))
  )

