"""Procedurally drawn face photos whose appearance depends on age.

The faces are drawn realistically enough for the MediaPipe BlazeFace detector to
find them, and carry several independent age cues that a small CNN can learn:
head proportions (childhood), hair colour and hairline (adulthood to old age),
wrinkles and eye opening (from the thirties on), skin saturation and age spots
(old age). Everything else (background, placement, scale, rotation, lighting,
noise, glasses, skin tone, hair and eye colour) is random and independent of age.
"""

import math

import cv2
import numpy as np

# Colours are RGB.
_SKIN_TONES = np.array(
    [(255, 226, 204), (242, 200, 170), (226, 178, 142), (200, 144, 105), (165, 112, 78), (128, 84, 58), (96, 62, 44)],
    dtype=np.float32,
)
_YOUTH_HAIR_COLOURS = np.array(
    [(28, 24, 22), (58, 40, 28), (96, 66, 40), (150, 112, 70), (212, 180, 120), (150, 70, 36)],
    dtype=np.float32,
)
_IRIS_COLOURS = np.array([(70, 45, 25), (40, 28, 20), (70, 110, 150), (80, 110, 70), (120, 95, 55)], dtype=np.float32)
_GREY_HAIR = np.array((150, 150, 150), dtype=np.float32)
_WHITE_HAIR = np.array((238, 238, 232), dtype=np.float32)
_ROSY_CHEEK = np.array((235, 120, 120), dtype=np.float32)
_LIP_RED = np.array((190, 80, 85), dtype=np.float32)
_AGE_SPOT_BROWN = np.array((120, 80, 50), dtype=np.float32)

# cv2 drawing takes fixed-point coordinates with this many fractional bits,
# which keeps small features in place at small image sizes.
_SHIFT = 4
_FIXED_ONE = 1 << _SHIFT

# Distance of each eye's centre from the face's midline, in face widths.
_EYE_OFFSET = 0.205


def draw_face(age: float, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """An RGB uint8 image (size x size x 3): one drawn face of the given age (0..100 years) on a random background."""
    image, _ = _draw_face_with_box(age, rng, size)
    return image


def _draw_face_with_box(
    age: float, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The image of draw_face and the (x0, y0, x1, y1) pixel box around the drawn head's skin."""
    age = float(np.clip(age, 0.0, 100.0))
    looks = _AgeLooks(age, rng)
    skin = _skin_colour(age, rng)

    face_width = size * rng.uniform(0.35, 0.6)
    # Jitter the head's centre, but keep the whole head, hair and ears included, inside the frame.
    x_slack = max(0.0, min(0.08 * size, size / 2 - 0.68 * face_width))
    cx = size / 2 + rng.uniform(-x_slack, x_slack)
    cy_min = face_width * (looks.head_aspect / 2 + 0.12)
    cy_max = max(cy_min, size - face_width * (looks.head_aspect / 2 + 0.05))
    cy = min(max(size * (0.47 + rng.uniform(-0.08, 0.08)), cy_min), cy_max)

    canvas = _background(size, skin, rng)
    face = _FacePainter(canvas, cx, cy, face_width, rng.uniform(-10, 10))
    _draw_head(face, looks, skin, rng)
    box = face.box(_head_outline(looks))

    # Soften the drawn edges a little, like a lens would.
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(0.4, size / 320))
    return _photograph(canvas, rng), box


class _AgeLooks:
    """Age-dependent proportions and markings of one person, with some per-person variation."""

    def __init__(self, age: float, rng: np.random.Generator):
        childness = math.exp(-age / 6)  # 1 at birth, ~0.2 at 10, ~0 after 20
        self.childness = childness
        self.head_aspect = 1.12 + 0.22 * (1 - childness) + rng.uniform(-0.03, 0.03)
        # Eye line as a fraction of head height from the top: low in babies, mid-head in adults.
        self.eye_level = 0.58 - 0.1 * (1 - childness)
        self.eye_half_width = 0.105 + 0.025 * childness
        self.eye_opening = 0.5 + 0.05 * childness - 0.16 * _smoothstep(30, 90, age)
        self.nose_width = 0.085 + 0.02 * (1 - childness)
        self.mouth_half_width = 0.12 + 0.055 * (1 - childness)
        self.lip_thickness = 0.035 + 0.01 * (1 - childness) - 0.02 * _smoothstep(25, 90, age)
        self.jaw_narrowing = 0.05 + 0.22 * (1 - childness)

        onset = 38 + rng.normal(0, 4)
        self.greyness = _smoothstep(onset, onset + 35, age)
        self.wrinkles = _smoothstep(28, 85, age) * rng.uniform(0.75, 1.25)
        self.age_spots = rng.poisson(max(0.0, age - 50) / 6)

        self.hair_density = 1 - 0.85 * math.exp(-age / 2.5)
        balding_tendency = rng.uniform() ** 2
        self.hair_recession = _smoothstep(22, 80, age) * balding_tendency
        self.long_hair = rng.uniform() < 0.35 and age > 3
        youth_colour = _YOUTH_HAIR_COLOURS[rng.integers(len(_YOUTH_HAIR_COLOURS))]
        # Babies' hair is lighter than it will become.
        youth_colour = youth_colour + (210 - youth_colour) * 0.35 * childness
        grey = _mix(_GREY_HAIR, _WHITE_HAIR, self.greyness)
        self.hair_colour = _mix(youth_colour, grey, min(1.0, self.greyness * 1.4))
        self.brow_colour = _mix(youth_colour * 0.7, self.hair_colour * 0.8, 0.6)
        self.iris_colour = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
        self.glasses = rng.uniform() < 0.2 and age > 6


def _skin_colour(age: float, rng: np.random.Generator) -> np.ndarray:
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = int(tone)
    skin = _mix(_SKIN_TONES[low], _SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)], tone - low)
    skin = skin * rng.uniform(0.95, 1.05, 3)
    # Older skin is less saturated.
    desaturation = 0.35 * _smoothstep(40, 95, age)
    return np.clip(_mix(skin, np.full(3, skin.mean()), desaturation), 0, 255)


def _background(size: int, skin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    def colour():
        # Keep the background clearly distinct from the skin.
        c = rng.uniform(0, 255, 3)
        if np.abs(c - skin).mean() < 60:
            c = np.where(skin > 128, c * 0.45, 255 - (255 - c) * 0.45)
        return c.astype(np.float32)

    # Drawn small and enlarged: a solid colour or a linear gradient, sometimes with soft blotches.
    if rng.uniform() < 0.3:
        small = colour()[None, None, :]
    else:
        direction = rng.uniform(0, 2 * math.pi)
        ramp = np.linspace(0, 1, 8, dtype=np.float32)
        t = math.cos(direction) * ramp[None, :, None] + math.sin(direction) * ramp[:, None, None]
        small = _mix(colour(), colour(), (t - t.min()) / (t.max() - t.min()))
        if rng.uniform() < 0.5:
            small += rng.normal(0, 30, small.shape)
    small = np.clip(small, 0, 255).astype(np.uint8)
    canvas = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.uniform() < 0.4:
        for _ in range(rng.integers(2, 7)):
            x, y = (int(v) for v in rng.integers(0, size, 2))
            extent = int(rng.integers(size // 12, size // 3))
            if rng.uniform() < 0.5:
                cv2.circle(canvas, (x, y), extent, _cv_colour(colour()), -1, cv2.LINE_AA)
            else:
                corner = (x + extent, y + int(rng.integers(size // 12, size // 2)))
                cv2.rectangle(canvas, (x, y), corner, _cv_colour(colour()), -1)
    return canvas


class _FacePainter:
    """Draws on the canvas in face coordinates: units of face width, origin at the head's centre, y down."""

    def __init__(self, canvas: np.ndarray, cx: float, cy: float, face_width: float, tilt_degrees: float):
        self.canvas = canvas
        self.face_width = face_width
        self.tilt = tilt_degrees
        c, s = math.cos(math.radians(tilt_degrees)), math.sin(math.radians(tilt_degrees))
        self._to_pixels = np.array([[c, -s], [s, c]]) * face_width
        self._centre = np.array([cx, cy])

    def pixels(self, points) -> np.ndarray:
        return np.asarray(points, dtype=np.float64).reshape(-1, 2) @ self._to_pixels.T + self._centre

    def _fixed(self, points) -> np.ndarray:
        return np.round(self.pixels(points) * _FIXED_ONE).astype(np.int32)

    def _fixed_point(self, u: float, v: float) -> tuple[int, int]:
        # Plain Python for single points: numpy's per-call overhead dominates at this size.
        (a, b), (c, d) = self._to_pixels.tolist()
        x, y = self._centre.tolist()
        return round((x + a * u + b * v) * _FIXED_ONE), round((y + c * u + d * v) * _FIXED_ONE)

    def thickness(self, width: float) -> int:
        return max(1, round(width * self.face_width))

    def polygon(self, points, colour):
        cv2.fillPoly(self.canvas, [self._fixed(points)], _cv_colour(colour), cv2.LINE_AA, _SHIFT)

    def line(self, points, colour, width: float):
        thickness = self.thickness(width)
        cv2.polylines(self.canvas, [self._fixed(points)], False, _cv_colour(colour), thickness, cv2.LINE_AA, _SHIFT)

    def ellipse(self, centre, axes, colour, width: float | None = None, arc=(0, 360), angle: float = 0):
        """A filled ellipse, or its outline when width is given; arc angles in degrees, clockwise from +x."""
        thickness = -1 if width is None else self.thickness(width)
        axes_fixed = tuple(max(1, round(a * self.face_width * _FIXED_ONE)) for a in axes)
        cv2.ellipse(
            self.canvas,
            self._fixed_point(*centre),
            axes_fixed,
            self.tilt + angle,
            arc[0],
            arc[1],
            _cv_colour(colour),
            thickness,
            cv2.LINE_AA,
            _SHIFT,
        )

    def box(self, points) -> tuple[float, float, float, float]:
        xy = self.pixels(points)
        (x0, y0), (x1, y1) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
        return x0, y0, x1, y1


def _head_outline(looks: _AgeLooks, n: int = 48) -> np.ndarray:
    """The skin outline of the head: an ellipse whose lower half narrows towards the chin as the jaw matures."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    below = np.clip(np.sin(t), 0, None)
    u = 0.5 * np.cos(t) * (1 - looks.jaw_narrowing * below**2)
    v = looks.head_aspect / 2 * np.sin(t)
    return np.stack([u, v], axis=1)


def _draw_head(face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, rng: np.random.Generator):
    half_height = looks.head_aspect / 2
    top = -half_height
    eye_v = top + looks.eye_level * looks.head_aspect
    chin_v = half_height
    nose_v = eye_v + 0.45 * (chin_v - eye_v)
    mouth_v = eye_v + (0.68 - 0.06 * looks.childness) * (chin_v - eye_v)
    shade = skin * 0.82

    clothes = rng.uniform(0, 255, 3)
    face.ellipse((0, chin_v + 0.55), (0.95, 0.4), clothes)
    _draw_back_hair(face, looks, half_height)
    face.polygon([(-0.2, 0.0), (0.2, 0.0), (0.22, chin_v + 0.3), (-0.22, chin_v + 0.3)], shade)
    for side in (-1, 1):
        face.ellipse((side * 0.49, eye_v + 0.1), (0.06, 0.11), shade)
    face.polygon(_head_outline(looks), skin)
    if looks.childness > 0.05:
        for side in (-1, 1):
            rosy = _mix(skin, _ROSY_CHEEK, 0.2 * looks.childness)
            face.ellipse((side * 0.26, mouth_v - 0.08), (0.1, 0.07), rosy)
    _draw_age_spots(face, looks, skin, eye_v, chin_v, rng)
    _draw_wrinkles(face, looks, skin, eye_v, nose_v, mouth_v, top)
    _draw_hair_cap(face, looks, skin, half_height, eye_v)
    for side in (-1, 1):
        _draw_eye(face, looks, skin, side, eye_v)
    _draw_nose(face, looks, shade, eye_v, nose_v)
    _draw_mouth(face, looks, skin, mouth_v)
    if looks.glasses:
        _draw_glasses(face, looks, eye_v, rng)


def _draw_back_hair(face: _FacePainter, looks: _AgeLooks, half_height: float):
    colour = _mix(looks.hair_colour * 0.85, looks.hair_colour, 0.5)
    if looks.hair_density < 0.5:
        return
    if looks.hair_recession > 0.6:
        # Only a fringe of hair above the ears is left.
        face.ellipse((0, -0.05), (0.53, 0.18), colour)
        return
    face.ellipse((0, -0.06), (0.56, half_height + 0.02), colour)
    if looks.long_hair:
        face.polygon([(-0.56, -0.05), (0.56, -0.05), (0.62, half_height + 0.35), (-0.62, half_height + 0.35)], colour)


def _draw_hair_cap(face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, half_height: float, eye_v: float):
    """Hair over the top of the head down to the hairline, thinner for babies and receding with age."""
    top = -half_height
    hairline = top + (0.3 + 0.45 * looks.hair_recession) * (eye_v - top)
    density = looks.hair_density * (1 - _smoothstep(0.45, 0.9, looks.hair_recession))
    if density <= 0.05:
        face.ellipse((0.1, top + 0.12), (0.1, 0.05), _mix(skin, np.full(3, 255.0), 0.25))  # bald scalp shine
        return
    colour = _mix(skin, looks.hair_colour, density)
    face.ellipse((0, hairline), (0.52, hairline - top + 0.03), colour, arc=(180, 360))
    # Round the hairline off, and let it recede at the temples first.
    face.ellipse((0, hairline + 0.005), (0.2, 0.035), skin, arc=(180, 360))
    for side in (-1, 1):
        face.ellipse((side * 0.22, hairline + 0.005), (0.1, 0.02 + 0.15 * looks.hair_recession), skin, arc=(180, 360))
    if looks.hair_recession < 0.45:
        for side in (-1, 1):  # sideburns down to the ears
            sideburn = [(side * 0.52, hairline), (side * 0.4, hairline), (side * 0.44, eye_v), (side * 0.5, eye_v)]
            face.polygon(sideburn, colour)


def _draw_eye(face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, side: int, eye_v: float):
    half_width = looks.eye_half_width
    half_height = half_width * looks.eye_opening
    u = side * _EYE_OFFSET
    face.ellipse((u, eye_v), (half_width, half_height), (240, 238, 232))
    iris = half_height * (1.0 + 0.1 * looks.childness)
    face.ellipse((u, eye_v), (iris, iris), looks.iris_colour)
    face.ellipse((u, eye_v), (iris * 0.48, iris * 0.48), (12, 10, 10))
    face.ellipse((u + 0.25 * iris, eye_v - 0.3 * iris), (iris * 0.2, iris * 0.2), (250, 250, 250))
    face.ellipse((u, eye_v), (half_width, half_height), (30, 22, 20), width=0.022, arc=(180, 360))
    face.ellipse((u, eye_v), (half_width, half_height), skin * 0.6, width=0.01, arc=(10, 170))
    # Lid crease, and the brow above it.
    crease = (half_width * 1.05, half_height + 0.035)
    face.ellipse((u, eye_v - 0.01), crease, skin * 0.78, width=0.01, arc=(200, 340))
    brow_v = eye_v - half_height - 0.06 - 0.015 * looks.childness
    brow = [(u - side * 0.11, brow_v + 0.02), (u, brow_v - 0.015), (u + side * 0.13, brow_v + 0.025)]
    face.line(brow, looks.brow_colour, 0.035 - 0.008 * looks.childness)


def _draw_nose(face: _FacePainter, looks: _AgeLooks, shade: np.ndarray, eye_v: float, nose_v: float):
    w = looks.nose_width
    for side in (-1, 1):
        face.line([(side * 0.06, eye_v + 0.02), (side * w * 0.55, nose_v - 0.07)], shade * 1.07, 0.012)
        wing_arc = (90, 250) if side < 0 else (-70, 90)
        face.ellipse((side * w * 0.85, nose_v - 0.015), (w * 0.35, w * 0.45), shade * 0.85, width=0.012, arc=wing_arc)
        face.ellipse((side * w * 0.45, nose_v), (w * 0.22, w * 0.13), shade * 0.45)  # nostril
    face.ellipse((0, nose_v - 0.02), (w * 0.6, w * 0.45), shade * 0.9, width=0.01, arc=(30, 150))


def _draw_mouth(face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, mouth_v: float):
    w = looks.mouth_half_width
    lip = _mix(skin, _LIP_RED, 0.4)
    lip_height = looks.lip_thickness
    face.ellipse((0, mouth_v), (w * 0.9, lip_height * 1.3), lip * 0.95, arc=(0, 180))
    upper_lip = [
        (-w, mouth_v),
        (-w * 0.3, mouth_v - lip_height),
        (0, mouth_v - lip_height * 0.7),
        (w * 0.3, mouth_v - lip_height),
        (w, mouth_v),
    ]
    face.polygon(upper_lip, lip * 0.88)
    parting = [(-w, mouth_v), (-w * 0.4, mouth_v + 0.008), (w * 0.4, mouth_v + 0.008), (w, mouth_v)]
    face.line(parting, lip * 0.45, 0.014)


def _draw_wrinkles(
    face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, eye_v: float, nose_v: float, mouth_v: float, top: float
):
    strength = looks.wrinkles
    if strength <= 0.02:
        return
    colour = skin * (1 - 0.35 * min(1.0, strength))
    width = 0.008 + 0.008 * min(1.0, strength)
    forehead_lines = 1 + int(3 * min(1.0, strength))
    forehead_v = eye_v - 0.2
    for i in range(forehead_lines):
        v = forehead_v - 0.045 * i
        if v < top + 0.15:
            break
        face.ellipse((0, v + 0.15), (0.2 + 0.02 * i, 0.15), colour, width=width, arc=(240, 300))
    for side in (-1, 1):
        outer = side * (_EYE_OFFSET + looks.eye_half_width + 0.01)
        for k in range(1 + int(2 * min(1.0, strength))):
            face.line([(outer, eye_v), (outer + side * 0.06, eye_v + (k - 1) * 0.03)], colour, width)
        # Nasolabial fold from the nose wing to past the mouth corner.
        fold_arc = (180, 270) if side < 0 else (270, 360)
        face.ellipse(
            (side * (looks.mouth_half_width + 0.02), mouth_v - 0.06),
            (0.07, mouth_v - nose_v + 0.05),
            colour,
            width=width * 1.2,
            arc=fold_arc,
            angle=-side * 15,
        )
        if strength > 0.4:  # under-eye bags
            bag = (looks.eye_half_width * 0.8, 0.04)
            face.ellipse((side * _EYE_OFFSET, eye_v + 0.04), bag, colour, width=width, arc=(30, 150))
        if strength > 0.6:  # marionette lines down from the mouth corners
            corner = side * looks.mouth_half_width
            face.line([(corner * 1.05, mouth_v + 0.02), (corner * 1.15, mouth_v + 0.1)], colour, width)


def _draw_age_spots(
    face: _FacePainter, looks: _AgeLooks, skin: np.ndarray, eye_v: float, chin_v: float, rng: np.random.Generator
):
    colour = _mix(skin, _AGE_SPOT_BROWN, 0.35)
    for _ in range(looks.age_spots):
        u, v = rng.uniform(-0.35, 0.35), rng.uniform(eye_v - 0.3, chin_v - 0.15)
        if abs(u) < 0.1 and v > eye_v:
            continue  # not on the nose
        r = rng.uniform(0.01, 0.025)
        face.ellipse((u, v), (r, r * rng.uniform(0.7, 1.0)), colour)


def _draw_glasses(face: _FacePainter, looks: _AgeLooks, eye_v: float, rng: np.random.Generator):
    frame = rng.uniform(0, 120, 3)
    rim = (looks.eye_half_width + 0.04, looks.eye_half_width * 0.75 + 0.03)
    for side in (-1, 1):
        face.ellipse((side * _EYE_OFFSET, eye_v + 0.01), rim, frame, width=0.014)
        face.line([(side * (_EYE_OFFSET + rim[0]), eye_v), (side * 0.5, eye_v - 0.02)], frame, 0.014)
    face.ellipse((0, eye_v + 0.01), (_EYE_OFFSET - rim[0], 0.03), frame, width=0.014, arc=(200, 340))


def _photograph(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven lighting and sensor noise."""
    size = canvas.shape[0]
    # A 2x2 gain image enlarged bilinearly: a smooth light falloff across the frame (fixed point, 128 = 1).
    corners = 128 * rng.uniform(0.75, 1.2) * rng.uniform(0.85, 1.15, (2, 2, 1))
    gain = cv2.resize(np.repeat(corners, 3, axis=2).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    image = cv2.multiply(canvas, gain, scale=1 / 128)
    # Uniform noise from raw random bytes: much faster than drawing normal deviates.
    noise = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
    strength = rng.uniform(0, 12)
    return cv2.addWeighted(image, 1.0, noise, strength / 255, -strength / 2)


def _smoothstep(start: float, end: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - start) / (end - start)))
    return t * t * (3 - 2 * t)


def _mix(a, b, t):
    return a + (b - a) * t


def _cv_colour(colour) -> tuple[float, float, float]:
    return tuple(min(255.0, max(0.0, float(c))) for c in colour)
