"""Compilation time of JAX functions, for the benchmarks in this folder."""

import jax

# jax.monitoring events whose durations add up to a jit's trace, lowering and
# compile.
COMPILE_EVENTS = (
  "/jax/core/compile/jaxpr_trace_duration",
  "/jax/core/compile/jaxpr_to_mlir_module_duration",
  "/jax/core/compile/backend_compile_duration",
)


class CompileClock:
  """Seconds spent tracing, lowering and compiling while the context is open."""

  def __enter__(self):
    self.seconds = 0.0
    jax.monitoring.register_event_duration_secs_listener(self._record)
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._record)

  def _record(self, event, duration_secs, **kwargs):
    del kwargs
    if event in COMPILE_EVENTS:
      self.seconds += duration_secs
