import numpy as np

from agenet_pipeline.core.mirroring import output_both_ways


class LeftHeavy:
    """A network that is not mirror-symmetric: softmax of the mean of each column third, left to right."""

    def __init__(self):
        self.batches = []

    def __call__(self, pixels):
        self.batches.append(len(pixels))
        thirds = np.stack([part.mean(axis=(1, 2, 3)) for part in np.array_split(pixels, 3, axis=2)], axis=1)
        exp = np.exp(thirds / 50)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def test_a_face_and_its_mirror_image_get_the_same_output_the_mean_of_both_readings():
    faces = np.random.default_rng(0).uniform(0, 255, (5, 12, 12, 3)).astype(np.float32)
    network = LeftHeavy()
    mirrored = faces[:, :, ::-1]
    assert not np.allclose(network(faces), network(mirrored))

    output = output_both_ways(network, faces)

    np.testing.assert_allclose(output, (network(faces) + network(mirrored)) / 2, rtol=1e-6)
    np.testing.assert_allclose(output_both_ways(network, mirrored), output, rtol=1e-6)
    np.testing.assert_allclose(output.sum(axis=1), 1, rtol=1e-6)


def test_the_faces_and_their_mirror_images_go_through_the_network_in_one_batch():
    network = LeftHeavy()
    output_both_ways(network, np.zeros((7, 12, 12, 3), np.float32))
    assert network.batches == [14]
