PYTHON ?= python3

.PHONY: demo test test-gpu test-kernels

# Set up a fresh machine and run the main job.
demo:
	./tools/setup.sh
	$(PYTHON) -m fusedrnn.cli demo

# Set up a fresh machine and run the CPU test suite (what CI runs): one worker a CPU core,
# each test file on one worker (module fixtures compile once).
test:
	./tools/setup.sh dev
	$(PYTHON) -m pytest -q -n auto --dist loadfile

# On a machine with a CUDA GPU: the GPU tests.
test-gpu:
	$(PYTHON) -m pytest -q -m gpu

# Every shipped CUDA kernel through NVRTC, not CI's sample (~35 minutes on 2 cores; no GPU needed).
test-kernels:
	$(PYTHON) -m pytest -q tests/test_cuda_compile.py --all-kernels
