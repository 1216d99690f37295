"""The training augmentation's parameters, one set for both input paths (`model.input` on TensorFlow,
`model.loader` on the other backends): the paper's flip, rotation and zoom, and the weights of a grey face."""

import math

MAX_ANGLE = 0.1 * math.pi  # rotation of up to 0.05 turn either way
ZOOM = (0.9, 1.1)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: the grey of an RGB pixel
