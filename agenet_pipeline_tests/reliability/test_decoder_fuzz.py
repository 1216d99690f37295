"""Fuzzing the decoders: real JPEG, PNG and WebP bytes, mutated (cut short, bytes flipped, data appended, header
fields out of range), through `decode_rgb` and the face stage's `face_from_photo`.

Each case must end in pixels or a rejection with a reason: no other exception, no hang (a deadline per case, and a
watchdog thread that ends the process), no more memory than the pixel limit allows (the peak resident memory of each
case is measured). The seeds are drawn faces always, and real photos from ../shared/data when it is here. Run with
`-s` to see how many cases ran.
"""

import io
import os
import resource
import struct
import time
import zlib
from collections import Counter
from datetime import timedelta

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from agenet_pipeline.core.status import OK
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.images import ImageRejected, decode_rgb
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.stage import face_from_photo
from agenet_pipeline_tests.conftest import shared_data

MAX_PIXELS = 2_000_000  # small, so that a decode the limit allows stays cheap
# Decoded RGB and OpenCV's BGR, the detector's copies and the decoders' own buffers: a few times the pixels' bytes.
MEMORY_BOUND_MB = 6 * MAX_PIXELS * 3 / 2**20 + 64
CASES = int(os.environ.get("AGENET_FUZZ_CASES", "1000"))  # per format; set the variable higher for a longer hunt
FACE_SETTINGS = FaceSettings(crop_size=64, max_pixels=MAX_PIXELS)
REASONS = {"unreadable", "too_large", "no_face", "low_score", "too_small"}


def encode(rgb: np.ndarray, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, kind, **options)
    return buffer.getvalue()


def real_photos() -> list[np.ndarray]:
    """A few real photos (RGB) when ../shared/data is here, none otherwise (CI, which has it, fails without it)."""
    try:
        fgnet, utkface = shared_data("fgnet") / "images", shared_data("utkface_part1") / "UTKFace"
    except pytest.skip.Exception:
        return []
    paths = sorted(fgnet.glob("*.JPG"))[:2] + sorted(utkface.glob("*.jpg"))[:1]
    return [np.asarray(Image.open(path).convert("RGB")) for path in paths]


class Seeds(list):
    """Encoded images, shown by their number (Hypothesis prints a strategy's arguments)."""

    def __repr__(self) -> str:
        return f"<{len(self)} seeds>"


@pytest.fixture(scope="module")
def seeds() -> dict[str, Seeds]:
    drawn = draw_face(40.0, np.random.default_rng(5), 160)
    photos = [drawn, *real_photos()]
    rgba = np.dstack([drawn, np.full(drawn.shape[:2], 200, np.uint8)])
    seeds = {
        "JPEG": [
            *(encode(photo, "JPEG", quality=85) for photo in photos),
            encode(drawn, "JPEG", progressive=True),
            cv2.imencode(".jpg", drawn[..., ::-1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes(),
        ],
        "PNG": [*(encode(photo, "PNG") for photo in photos), encode(rgba, "PNG"), encode(drawn, "PNG", bits=4)],
        "WEBP": [
            *(encode(photo, "WEBP", quality=80) for photo in photos),
            encode(drawn, "WEBP", lossless=True),
            encode(rgba, "WEBP"),  # VP8X with an alpha chunk
        ],
    }
    return {kind: Seeds(encoded) for kind, encoded in seeds.items()}


def header_fields(data: bytes, kind: str) -> list[tuple[int, int]]:
    """(offset, length) of the header fields to set out of range: sizes, depths, counts, chunk lengths."""
    if kind == "PNG":  # IHDR: width, height, bit depth, colour type, compression, filter, interlace; a chunk length
        return [(16, 4), (20, 4), (24, 1), (25, 1), (26, 1), (27, 1), (28, 1), (33, 4)]
    if kind == "JPEG":  # SOF: length, precision, height, width, components; every segment's length
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        segments = [
            i + 2 for i in range(2, min(len(data) - 1, 2000)) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xFE
        ]
        return [(sof + 2, 2), (sof + 4, 1), (sof + 5, 2), (sof + 7, 2), (sof + 9, 1), *((s, 2) for s in segments)]
    chunk = data[12:16]  # WebP: the RIFF size, the first chunk's size, then that chunk's own size fields
    fields = [(4, 4), (16, 4)]
    if chunk == b"VP8 ":
        fields += [(26, 2), (28, 2)]  # frame width and height, 14 bits each and 2 of scale
    elif chunk == b"VP8L":
        fields += [(21, 4)]  # width - 1 and height - 1, 14 bits each
    elif chunk == b"VP8X":
        fields += [(20, 1), (24, 3), (27, 3), (34, 4)]  # flags, canvas width - 1 and height - 1, next chunk size
    return fields


def fix_png_crc(data: bytearray) -> None:
    if data[12:16] == b"IHDR":
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))


@st.composite
def mutated(draw, seeds: Seeds, kind: str) -> tuple[str, bytes]:
    """A seed changed by one to three mutations; (what was done, the bytes)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    done = []
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(["cut", "flip", "append", "header", "header", "delete"]))
        if mutation == "cut":
            end = draw(st.integers(0, len(data)))
            data, what = data[:end], f"cut at {end}"
        elif mutation == "flip":
            near_start = draw(st.booleans())
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(0, max(0, min(len(data), 512 if near_start else len(data)) - 1)))
                if data:
                    data[at] ^= draw(st.integers(1, 255))
            what = f"flipped bytes{' near the start' if near_start else ''}"
        elif mutation == "append":
            extra = draw(
                st.one_of(
                    st.binary(max_size=12000),
                    st.sampled_from([b"\0" * 8192, b"\xff\xd9" * 3000, bytes(data)]),
                )
            )
            data, what = data + extra, f"{len(extra)} bytes appended"
        elif mutation == "delete":
            start = draw(st.integers(0, len(data)))
            end = draw(st.integers(start, min(len(data), start + 2000)))
            data, what = data[:start] + data[end:], f"bytes {start}-{end} deleted"
        else:
            fields = [(at, n) for at, n in header_fields(bytes(data), kind) if 0 <= at and at + n <= len(data)]
            if not fields:
                continue
            at, n = draw(st.sampled_from(fields))
            value = draw(
                st.one_of(st.sampled_from([0, 1, 2 ** (8 * n) - 1, 2 ** (8 * n - 1)]), st.integers(0, 2 ** (8 * n) - 1))
            )
            data[at : at + n] = value.to_bytes(n, "big")
            if kind == "PNG" and draw(st.booleans()):
                fix_png_crc(data)  # a valid checksum takes the new header past libpng's CRC check
            what = f"header bytes {at}-{at + n} = {value:#x}"
        done.append(what)
    return " + ".join(done), bytes(data)


def peak_memory_reset() -> bool:
    """Resets this process's peak resident memory (VmHWM) to its current size; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def resident_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(resolve_model()) as found:
        yield found


def check(description: str, data: bytes, detector: FaceDetector, outcomes: Counter, peaks: list) -> None:
    per_case = peak_memory_reset()
    before = resident_kb("VmRSS:") if per_case else 0
    try:
        rgb = decode_rgb(data, MAX_PIXELS)
    except ImageRejected as rejection:
        assert rejection.reason in {"unreadable", "too_large"} and rejection.detail, (description, rejection)
        outcomes[rejection.reason] += 1
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, description
        assert rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS, description
        outcomes["decoded"] += 1
    row = face_from_photo(data, detector, FACE_SETTINGS)
    assert row["status"] == OK or row["status"] in REASONS, (description, row["status"])
    assert row["status"] not in {"unreadable", "too_large"} or row["detail"], description
    if per_case:
        peaks.append((resident_kb("VmHWM:") - before) / 1024)
        assert peaks[-1] < MEMORY_BOUND_MB, (description, f"{peaks[-1]:.0f} MB at its peak")


@pytest.mark.timeout(300, method="thread")  # a decoder stuck in native code ends the run with every stack printed
@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_mutated_images_end_in_pixels_or_a_reason(kind, seeds, detector):
    outcomes, peaks = Counter(), []
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()

    @settings(
        max_examples=CASES,
        deadline=timedelta(seconds=3),
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(seeds[kind], kind))
    def case(described):
        check(*described, detector, outcomes, peaks)

    case()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - maxrss_before
    cases = sum(outcomes.values())
    print(
        f"\n{kind}: {cases} mutated files from {len(seeds[kind])} seeds in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        + (f"; peak memory per case at most {max(peaks):.0f} MB" if peaks else "")
        + f"; process peak grew {growth:.0f} MB"
    )
    assert cases >= CASES // 2 and outcomes["decoded"] and outcomes["unreadable"]
    if not peaks:  # no peak per case here: the whole run's must do (Hypothesis's own bookkeeping counts too)
        assert growth < MEMORY_BOUND_MB
