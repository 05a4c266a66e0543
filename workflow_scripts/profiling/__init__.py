"""Profiling: why an engine is as fast as it is. Separate jobs from timing (a profiler's overhead never
reaches the timings): the PyTorch profiler in-process, Nsight Systems around a whole process."""
