"""A finite space's points by index, never materialised: grids decoded in mixed radix, and random
order over them as a seeded bijection on indices, so a 100,000-point grid costs the same per
trial as a 10-point one."""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .values import Scalar, same_value

if TYPE_CHECKING:
    from .space import SearchSpace


class Grid:
    """The grid's points by index: last axis fastest, as itertools.product orders them."""

    def __init__(self, axes: dict[str, tuple[Scalar, ...]]):
        self.names = list(axes)
        self.values = [axes[name] for name in self.names]
        self.size = math.prod(len(v) for v in self.values)

    def point(self, index: int) -> dict[str, Scalar]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        point: dict[str, Scalar] = {}
        for name, values in zip(reversed(self.names), reversed(self.values), strict=True):
            index, digit = divmod(index, len(values))
            point[name] = values[digit]
        return {name: point[name] for name in self.names}

    def index_of(self, point: dict[str, Any]) -> int | None:
        """The index of `point` (exactly these parameters, each at one of its values), or None."""
        if set(self.names) != set(point):
            return None
        index = 0
        for name, values in zip(self.names, self.values, strict=True):
            digit = next((i for i, v in enumerate(values) if same_value(v, point[name])), None)
            if digit is None:
                return None
            index = index * len(values) + digit
        return index


class ConditionalGrid:
    """The valid points of a conditional space by index, without materialising them.

    One branch per assignment of the controlling list parameters (those a condition reads),
    enumerated in evaluation order; a controller that does not exist in a branch is not
    branched on, so no two branches share a point. A branch's existing parameters form a
    rectangular sub-grid (a `Grid`); the grid is their concatenation, and a point is found by
    bisecting the branches' start indices. Memory is O(branches), not O(points).
    """

    def __init__(self, space: SearchSpace, values: dict[str, tuple[Scalar, ...]]):
        self.names = list(space.axes)
        self.values = [values[name] for name in self.names]
        referenced = {ref for refs in space.conditions.values() for ref in refs}
        controllers = [name for name in space.order if name in referenced and name in space.axes]
        self.branches: list[Grid] = []
        self.starts: list[int] = []
        size = 0
        for branch in branches(space, controllers, values):
            sub = {
                name: (branch[name],) if name in branch else values[name]
                for name in self.names
                if space.is_active(name, branch)
            }
            grid = Grid(sub)
            self.branches.append(grid)
            self.starts.append(size)
            size += grid.size
        self.size = size

    def point(self, index: int) -> dict[str, Scalar]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        branch = bisect.bisect_right(self.starts, index) - 1
        return self.branches[branch].point(index - self.starts[branch])

    def index_of(self, point: dict[str, Any]) -> int | None:
        for start, branch in zip(self.starts, self.branches, strict=True):
            index = branch.index_of(point)
            if index is not None:
                return start + index
        return None


def branches(
    space: SearchSpace, controllers: list[str], values: dict[str, tuple[Scalar, ...]]
) -> Iterator[dict[str, Scalar]]:
    """Every assignment of the controllers that exist, last controller fastest."""
    assignment: dict[str, Scalar] = {}

    def walk(position: int) -> Iterator[dict[str, Scalar]]:
        if position == len(controllers):
            yield dict(assignment)
            return
        name = controllers[position]
        if not space.is_active(name, assignment):
            yield from walk(position + 1)
            return
        for value in values[name]:
            assignment[name] = value
            yield from walk(position + 1)
        del assignment[name]

    return walk(0)


class Permutation:
    """A seeded bijection on range(size): random order without repeats, O(1) memory.

    A balanced Feistel network over the next even power of two, with cycle walking to stay
    inside range(size).
    """

    ROUNDS = 4

    def __init__(self, size: int, seed: int | None):
        self.size = size
        bits = max(2, (size - 1).bit_length())
        bits += bits % 2
        self.half = bits // 2
        self.mask = (1 << self.half) - 1
        material = f"mlflow-sweeper:{seed}".encode()
        self.keys = [
            int.from_bytes(hashlib.sha256(material + bytes([r])).digest()[:8], "big")
            for r in range(self.ROUNDS)
        ]

    def _round(self, value: int, key: int) -> int:
        digest = hashlib.blake2b(value.to_bytes(8, "big"), key=key.to_bytes(8, "big"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") & self.mask

    def _encrypt(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        value = self._encrypt(index)
        while value >= self.size:
            value = self._encrypt(value)
        return value

    def _decrypt(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for key in reversed(self.keys):
            left, right = right ^ self._round(left, key), left
        return (left << self.half) | right

    def index_of(self, value: int) -> int:
        """The position of `value`: `self[self.index_of(v)] == v` (the walk run backwards)."""
        if not 0 <= value < self.size:
            raise IndexError(value)
        index = self._decrypt(value)
        while index >= self.size:
            index = self._decrypt(index)
        return index
