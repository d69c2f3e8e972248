"""`sandbox batch`: many guests, each in its own `sandbox run` process, in parallel on this
machine or on a Dask cluster.

The package is split by concern:

- `manifest`: a manifest (JSON Lines or TOML) parsed into `Entry` values, every path made
  absolute, every option checked by `sandbox run`'s own parser; a mistake is a
  `ManifestError` naming file:line. A manifest is bounded (bytes, entries, inline stdin)
  and, under --manifest-root DIR, confined: every host path it names resolves inside DIR.
- `runner`: `run_entry`, the one function that runs an entry, locally or on a Dask worker:
  it stages the program (and shipped files) in a private directory, starts
  `python -m sandbox run` in a new session, reads its output with bounded memory, kills the
  process group at a host-side wall limit a little above the guest's own timeout, and returns
  the record.
- `record`: what a record holds, how a run is judged (passed, or failed by kind), and the
  output file (one write per record, resumable, a truncated last line ignored).
- `pool`: the local pool (threads that each wait on one child process) and the batch loop:
  skip what the output already has, write records as runs finish (in manifest order under
  --deterministic), show progress, stop cleanly on Ctrl-C; the output is flock'ed, so a
  second batch on the same -o is refused.
- `dask_backend`: the same `run_entry` submitted to a `distributed.Client`, program and
  input files shipped as bytes (imported only when --dask is given: Dask is slow to import).
- `summary`: the table printed at the end.

Invariants: a record is written only for a run that finished (or was killed by a limit);
every line of the output is a complete JSON object; a child process never outlives the
runner that started it unless the runner's own process is killed.
"""
