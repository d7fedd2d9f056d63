"""The FlashAttention rule (docs/design.md) for a fast backend, against the
independent float64 reference of tests/reference.py. The rule itself lives in
fusedrnn.testing: the tuner's correctness gate applies the same one."""
from __future__ import annotations

import functools

from fusedrnn.testing import check_backend as _check_backend
from reference import reference_rnn

check_backend = functools.partial(_check_backend, reference=reference_rnn)
