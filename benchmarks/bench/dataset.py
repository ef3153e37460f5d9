"""The data set: size profiles, the scaled key/size list, each object's content."""

import collections
import hashlib
import random

from .common import MiB, SEED


def read_profiles(path):
    """({profile: [(low, count), ...]}, [header comment lines])."""
    profiles, header = collections.defaultdict(list), []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                header.append(line[1:].strip())
                continue
            parts = line.split("\t")
            if len(parts) != 3 or parts[0] == "profile":
                continue
            profiles[parts[0]].append((int(parts[1]), int(parts[2])))
    return dict(profiles), header


def build_dataset(histogram, scale, seed=SEED):
    """[(key, size)] in a seeded, deterministic order: scaled counts, same shape."""
    rnd = random.Random(seed)
    lows = [low for low, _ in histogram]
    sizes = []
    for i, (low, count) in enumerate(histogram):
        exact = count * scale
        n = int(exact) + (1 if rnd.random() < exact - int(exact) else 0)
        if low == 0:
            high = 1
        elif i + 1 < len(lows):
            high = lows[i + 1]
        else:
            high = low * 2
        for _ in range(n):
            sizes.append(0 if low == 0 else rnd.randrange(low, high))
    rnd.shuffle(sizes)
    # keys like a real bucket: a few hundred "directories", a few levels deep
    return [("%02d/%03d/obj-%07d.bin" % (i % 37, (i * 7) % 211, i), size) for i, size in enumerate(sizes)]


def object_bytes(key, size, seed=SEED):
    """The object's content: deterministic from the seed and the key."""
    if size == 0:
        return b""
    digest = hashlib.sha256(("%d/%s" % (seed, key)).encode()).digest()
    rnd = random.Random(digest)
    if size <= 64 * MiB:
        return rnd.randbytes(size)
    # randbytes cannot make more than 256 MiB at once
    return b"".join(rnd.randbytes(min(64 * MiB, size - off)) for off in range(0, size, 64 * MiB))
