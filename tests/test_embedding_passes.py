import itertools
import random

import numpy as np
import pytest

from appliance.embedding.backends.layout import read_layout
from appliance.embedding.backends.runtime import RuntimeBackend
from appliance.embedding.passes import plan_passes
from appliance.models.registry import ModelRegistry


def cost(lengths: list[int], passes: list[np.ndarray], overhead: int) -> int:
    return sum(overhead + len(rows) * max(lengths[row] for row in rows) for rows in passes)


def cheapest_split(lengths: list[int], max_rows: int, overhead: int) -> int:
    """Every way to cut the longest-first order into passes of at most max_rows."""
    ordered = sorted(lengths, reverse=True)
    best = None
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        sizes, run = [], 1
        for cut in cuts:
            if cut:
                sizes.append(run)
                run = 1
            else:
                run += 1
        sizes.append(run)
        if max(sizes) > max_rows:
            continue
        total, start = 0, 0
        for size in sizes:
            total += overhead + size * ordered[start]
            start += size
        best = total if best is None else min(best, total)
    assert best is not None
    return best


def test_every_row_is_passed_once_longest_first_within_the_cap() -> None:
    lengths = [12, 80, 9, 14, 13, 11, 40, 10, 12, 9, 8, 15]
    passes = plan_passes(lengths, max_rows=4)
    rows = np.concatenate(passes)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(1 <= len(p) <= 4 for p in passes)
    assert [lengths[r] for r in rows] == sorted(lengths, reverse=True)


def test_one_long_text_gets_its_own_pass_instead_of_padding_the_others() -> None:
    lengths = [83, 12, 11, 11, 10, 9, 9]
    passes = plan_passes(lengths, max_rows=8)
    assert [p.tolist() for p in passes] == [[0], [1, 2, 3, 4, 5, 6]]
    assert cost(lengths, passes, 10) < 10 + 7 * 83  # one pass padded to 83


def test_texts_of_one_length_take_the_fewest_passes() -> None:
    passes = plan_passes([20] * 19, max_rows=8)
    assert len(passes) == 3 and sum(len(p) for p in passes) == 19
    assert plan_passes([], max_rows=8) == []


@pytest.mark.parametrize("seed", range(30))
def test_the_plan_costs_the_least_of_every_split(seed: int) -> None:
    generator = random.Random(seed)
    lengths = [
        generator.choice([3, 8, 12, 20, 45, 90, 256]) for _ in range(generator.randint(1, 10))
    ]
    max_rows, overhead = generator.randint(1, 6), generator.choice([0, 10, 40])
    passes = plan_passes(lengths, max_rows, overhead)
    assert all(len(p) <= max_rows for p in passes)
    assert cost(lengths, passes, overhead) == cheapest_split(lengths, max_rows, overhead)


def test_an_exported_backend_pads_each_pass_as_its_tokenizer_would() -> None:
    model = ModelRegistry().resolve("all-MiniLM-L6-v2")
    layout = read_layout(model.directory)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def forward(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        seen.append((ids, mask, types))
        return np.ones((*ids.shape, layout.dimension), dtype=np.float32)

    backend = RuntimeBackend(layout, forward)
    texts = ["a short one", "word " * 400, "a somewhat longer text of some more words", "x"]
    backend.embed(texts, batch_size=8)
    assert sum(len(ids) for ids, _, _ in seen) == len(texts) and len(seen) > 1
    padding = layout.tokenizer()  # pads a batch to its longest
    for ids, mask, types in seen:
        passed = [
            next(t for t in texts if backend._unpadded.encode(t).ids == row[m == 1].tolist())
            for row, m in zip(ids, mask, strict=True)
        ]
        expected = padding.encode_batch(passed)
        np.testing.assert_array_equal(ids, [e.ids for e in expected])
        np.testing.assert_array_equal(mask, [e.attention_mask for e in expected])
        np.testing.assert_array_equal(types, [e.type_ids for e in expected])
