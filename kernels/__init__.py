"""CUDA kernels (numba.cuda) and CUDA C sources; importable without a GPU."""
