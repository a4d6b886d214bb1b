#!/usr/bin/env escript
%%! -noshell
%% Runs supervisor scenarios on real OTP supervisors and prints what happened,
%% for SupervisorOtp.test.ts to compare with the model fiberd is tested against.
%% Input: a file of terms {Strategy, AutoShutdown, MaxRestarts, PeriodSeconds,
%% [{Key, Restart, Significant, Plan}], [Command]}, one per scenario.
%% Output per scenario: "log ...", "answer ...", "child Id:Status" and "end ..."
%% lines, then "---".
-mode(compile).
-export([init/1, log/2]).

main([File]) ->
    {ok, Scenarios} = file:consult(File),
    logger:remove_handler(default),
    ok = logger:add_handler(capture, ?MODULE, #{}),
    process_flag(trap_exit, true),
    ets:new(trace, [named_table, public, ordered_set]),
    ets:new(plans, [named_table, public, set]),
    ets:new(flags, [named_table, public, set]),
    lists:foreach(fun run/1, Scenarios).

%% logger handler: notes that a supervisor gave up (reached its restart intensity)
log(#{msg := {report, #{label := {supervisor, shutdown}}}}, _Config) -> ets:insert(flags, {gave_up});
log(_Event, _Config) -> ok.

init({Flags, Specs}) -> {ok, {Flags, Specs}}.

run({Strategy, Auto, MaxR, Period, Children, Commands}) ->
    [ets:delete_all_objects(T) || T <- [trace, plans, flags]],
    [ets:insert(plans, {K, P}) || {K, _, _, P} <- Children],
    Flags = #{strategy => Strategy, intensity => MaxR, period => Period, auto_shutdown => Auto},
    Specs = [spec(K, R, S) || {K, R, S, _} <- Children],
    case supervisor:start_link(?MODULE, {Flags, Specs}) of
        {ok, Sup} ->
            commands(Sup, Commands),
            report(Sup);
        {error, {shutdown, {failed_to_start_child, Id, _}}} ->
            print_trace(),
            io:format("end failed to start: ~s~n", [Id])
    end,
    io:format("---~n").

spec(K, R, S) ->
    #{id => K, start => {erlang, apply, [fun() -> start_child(K) end, []]}, restart => R, significant => S,
      shutdown => 5000, type => worker}.

start_child(K) ->
    Outcome = case ets:lookup(plans, K) of
                  [{K, [O | Rest]}] -> ets:insert(plans, {K, Rest}), O;
                  _ -> ok
              end,
    case Outcome of
        fail -> trace("fail", K), {error, no};
        ignore -> trace("ignore", K), ignore;
        ok ->
            trace("start", K),
            %% like proc_lib:start_link, the start returns once the child traps exits (else a stop right
            %% after the start could kill it before it logs its exit)
            Parent = self(),
            Pid = spawn_link(fun() -> process_flag(trap_exit, true), Parent ! {ready, self()}, child(K) end),
            receive {ready, Pid} -> {ok, Pid} end
    end.

child(K) ->
    receive
        {'EXIT', _, Reason} -> trace("exit", K), exit(Reason);
        crash -> trace("exit", K), exit(boom);
        normal -> trace("exit", K), exit(normal)
    end.

trace(What, K) -> ets:insert(trace, {erlang:unique_integer([monotonic]), lists:flatten(io_lib:format("~s ~s", [What, K]))}).

commands(_Sup, []) -> ok;
commands(Sup, [C | Rest]) ->
    case is_process_alive(Sup) of
        false -> ok;
        true -> command(Sup, C), settle(Sup, 100), commands(Sup, Rest)
    end.

%% waits until the supervisor has handled everything, retries (try_again_restart casts) included
settle(_Sup, 0) -> ok;
settle(Sup, N) ->
    case catch supervisor:which_children(Sup) of
        Children when is_list(Children) ->
            case lists:keymember(restarting, 2, Children) of
                true -> settle(Sup, N - 1);
                false -> ok
            end;
        _ -> ok
    end.

command(_Sup, advance) -> ok;
command(_Sup, {exit, none, _}) -> ok;
command(Sup, {exit, Id, Kind}) ->
    {Id, Pid, _, _} = lists:keyfind(Id, 1, supervisor:which_children(Sup)),
    Ref = monitor(process, Pid),
    Pid ! Kind,
    receive {'DOWN', Ref, _, _, _} -> ok end;
command(_Sup, {plan, none, _}) -> ok;
command(_Sup, {plan, Id, Outcomes}) -> ets:insert(plans, {Id, Outcomes});
command(Sup, {start, K, R, S, O}) ->
    ets:insert(plans, {K, [O]}),
    answer(case catch supervisor:start_child(Sup, spec(K, R, S)) of
               {ok, undefined} -> ignored;
               {ok, P} when is_pid(P) -> started;
               {error, {already_started, _}} -> duplicate;
               {error, already_present} -> duplicate;
               {error, {no, _}} -> failed;
               {error, _} -> invalid;
               {'EXIT', _} -> stopped
           end);
command(Sup, {terminate, Id}) ->
    answer(case catch supervisor:terminate_child(Sup, Id) of
               ok -> ok;
               {error, not_found} -> 'not found';
               {'EXIT', _} -> stopped
           end);
command(Sup, {restart, Id}) ->
    answer(case catch supervisor:restart_child(Sup, Id) of
               {ok, undefined} -> ignored;
               {ok, P} when is_pid(P) -> started;
               {error, not_found} -> 'not found';
               {error, running} -> running;
               {error, restarting} -> restarting;
               {error, no} -> failed;
               {'EXIT', _} -> stopped
           end);
command(Sup, {delete, Id}) ->
    answer(case catch supervisor:delete_child(Sup, Id) of
               ok -> ok;
               {error, not_found} -> 'not found';
               {error, running} -> running;
               {error, restarting} -> restarting;
               {'EXIT', _} -> stopped
           end).

answer(A) -> io:format("answer ~s~n", [A]).

print_trace() -> [io:format("log ~s~n", [Line]) || {_, Line} <- ets:tab2list(trace)].

report(Sup) ->
    print_trace(),
    case is_process_alive(Sup) of
        true ->
            [io:format("child ~s:~s~n", [Id, status(P)]) || {Id, P, _, _} <- lists:reverse(supervisor:which_children(Sup))],
            io:format("end running~n"),
            %% stopped before the next scenario clears the tables (its children's exits would land there)
            Ref = monitor(process, Sup),
            unlink(Sup),
            exit(Sup, shutdown),
            receive {'DOWN', Ref, _, _, _} -> ok end;
        false ->
            io:format("end ~s~n", [case ets:member(flags, gave_up) of true -> "gave up"; false -> "shut down" end])
    end.

status(undefined) -> "stopped";
status(restarting) -> "restarting";
status(P) when is_pid(P) -> "running".
