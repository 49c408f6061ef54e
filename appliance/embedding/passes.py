"""Which texts go through the model together: the forward passes of one batch.

A pass pads every text to its longest, and the model's work grows with rows × that length; each
pass also costs a fixed amount whatever it holds. Measured on this 2-core box for MiniLM-L6, one
thread, a pass of n rows of L tokens took about (10 + n × L) × 0.2 ms on torch and
(12 + n × L) × 0.11 ms on OpenVINO (2 threads: (9 + n × L) × 0.07 ms): the fixed part is worth
about ten tokens on each.

A batch of seven concurrent queries (SciFact and NFCorpus, 7 to 83 tokens) is 45 % padding in
one pass: one long query makes every other row as long. The plan sorts texts longest first and
cuts that order where the padding saved is worth more than another pass's fixed cost,
minimising the sum of (overhead + rows × longest) over the passes, exactly (dynamic programming
over cut points, O(texts × max_rows)).
"""

from __future__ import annotations

import numpy as np

# A pass's fixed cost in token rows (see above).
PASS_OVERHEAD_TOKENS = 10


def plan_passes(
    lengths: np.ndarray | list[int],
    max_rows: int,
    overhead_tokens: int = PASS_OVERHEAD_TOKENS,
) -> list[np.ndarray]:
    """Row indices of each pass, longest texts first; every pass holds at most `max_rows`.
    `lengths`: each text's length in tokens, as the model reads it (cut at its window)."""
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    longest = sizes[order].tolist()
    count, cap = len(longest), max(1, max_rows)
    # best[end]: the least cost of passing the first `end` rows; cut[end]: where its last
    # pass starts. A pass [start, end) costs overhead + (end - start) × longest[start].
    best = [0] * (count + 1)
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        best[end], cut[end] = min(
            (best[start] + overhead_tokens + (end - start) * longest[start], start)
            for start in range(max(0, end - cap), end)
        )
    passes: list[np.ndarray] = []
    end = count
    while end > 0:
        passes.append(order[cut[end] : end])
        end = cut[end]
    passes.reverse()
    return passes
