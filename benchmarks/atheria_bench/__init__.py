"""The benchmark of the native engines against AetheriaMotor, as a package.

Modules: ``common`` (constants, RSS, timing), ``plan`` (which workloads, which sizes),
``workloads`` (the registry: name -> function), ``runners`` (engines stepped in
lock-step, summaries, comparisons), ``worker`` (the JSON-lines worker protocol and
its subprocess), ``targets`` (the goals as a data table), ``report`` (Markdown and
plot), ``cli`` (the command line of ``benchmarks/benchmark_native_vs_python.py``).
"""
