"""Developer tools: benchmarks, soak, offline models; never imported at run time."""
