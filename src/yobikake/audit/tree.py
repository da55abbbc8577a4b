"""The audit log as an RFC 6962 Merkle tree, read from the database.

Leaf i is event i + 1's hash (custody/merkle.py). The RFC's recursion only ever asks for
whole, aligned subtrees and for ranges inside one 1,024-event tile, so `LogTree` keeps
the hash of every whole subtree of a tile or more (`TreeNode`) and reads at most a few
tiles of events for a head or a proof: a head of a million events costs a few hundred
rows, not a million.
"""

from django.db.models import Max

from yobikake.audit.models import Event, TreeNode
from yobikake.custody import merkle

TILE_LEVEL = 10
TILE = 1 << TILE_LEVEL


class MissingEvents(Exception):
    """The log has fewer events than the tree was asked to hold."""


def log_size() -> int:
    """How many events the log holds, as committed (the tree's size)."""
    return int(Event.objects.aggregate(last=Max("seq"))["last"] or 0)


class LogTree:
    """MTH(D[lo:hi]) over the log's first `size` events, with proofs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tiles: dict[int, list[bytes]] = {}
        self._nodes = {
            (level, index): bytes.fromhex(digest)
            for level, index, digest in TreeNode.objects.values_list("level", "index", "hash")
        }
        self._new: list[TreeNode] = []

    def root(self) -> bytes:
        return self.mth(0, self.size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf `index` in the tree of the first `size` leaves."""
        return merkle.path(index, 0, size, self.mth)

    def consistency(self, old_size: int, size: int) -> list[bytes]:
        return merkle.consistency(old_size, size, self.mth)

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if not 0 <= lo <= hi <= self.size:
            raise ValueError(f"leaves {lo}–{hi} are not in a tree of {self.size}")
        if n == 0:
            return merkle.EMPTY_ROOT
        if n >= TILE and n & (n - 1) == 0 and lo % n == 0:  # a whole subtree: kept
            return self._node(n.bit_length() - 1, lo >> (n.bit_length() - 1))
        if (lo >> TILE_LEVEL) == ((hi - 1) >> TILE_LEVEL):  # inside one tile
            start = (lo >> TILE_LEVEL) << TILE_LEVEL
            return merkle.fold(_subtrees(self._tile(lo >> TILE_LEVEL)[lo - start : hi - start]))
        k = merkle.split(n)
        return merkle.node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def save(self) -> None:
        """Keep the whole subtrees computed since (another process may have kept them
        first: the same hashes)."""
        if self._new:
            TreeNode.objects.bulk_create(self._new, ignore_conflicts=True)
            self._new = []

    def _node(self, level: int, index: int) -> bytes:
        digest = self._nodes.get((level, index))
        if digest is None:
            if level == TILE_LEVEL:
                digest = merkle.fold(_subtrees(self._tile(index)))
            else:
                digest = merkle.node_hash(
                    self._node(level - 1, 2 * index), self._node(level - 1, 2 * index + 1)
                )
            self._nodes[(level, index)] = digest
            self._new.append(TreeNode(level=level, index=index, hash=digest.hex()))
        return digest

    def _tile(self, tile: int) -> list[bytes]:
        """The leaf hashes of one tile (its events within the tree's size)."""
        leaves = self._tiles.get(tile)
        if leaves is None:
            first, last = tile * TILE + 1, min((tile + 1) * TILE, self.size)
            hashes = list(
                Event.objects.filter(seq__gte=first, seq__lte=last)
                .order_by("seq")
                .values_list("hash", flat=True)
            )
            if len(hashes) != last - first + 1:
                raise MissingEvents(f"events {first}–{last} are not all in the log")
            leaves = self._tiles[tile] = [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]
        return leaves


def _subtrees(hashed_leaves: list[bytes]) -> list[bytes]:
    frontier = merkle.Frontier()
    for leaf in hashed_leaves:
        frontier.append(leaf)
    return frontier.subtrees
