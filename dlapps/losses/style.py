"""Neural style transfer losses (Gatys et al., 2016, "Image Style Transfer Using Convolutional Neural Networks"),
in the TF tutorial's normalisation, with the course's formulas named where they differ.

All take feature maps of shape (batch, height, width, channels), float32.
"""

from keras import ops


def gram_matrix(features):
    """Style as feature correlations: G[c, d] = sum over positions of F[., c] F[., d] / (height * width).

    Args:
        features: (batch, height, width, channels) float32.

    Returns:
        (batch, channels, channels). The course writes G = A A^T unnormalised and puts 1 / (2 n_H n_W n_C)^2 into the
        style cost instead; the TF tutorial (and this function) divides by the number of positions here.
    """
    shape = ops.shape(features)
    locations = ops.cast(shape[1] * shape[2], features.dtype)
    return ops.einsum("bijc,bijd->bcd", features, features) / locations


def content_loss(content_features, generated_features):
    """Mean squared difference of one layer's activations (the course's J_content up to its 1/(4 n_H n_W n_C))."""
    return ops.mean(ops.square(generated_features - content_features))


def style_loss(style_gram, generated_features):
    """Mean squared difference between a style image's Gram matrix and the generated image's, for one layer."""
    return ops.mean(ops.square(gram_matrix(generated_features) - style_gram))


def total_variation_loss(images):
    """Sum of absolute differences between neighbouring pixels (smoothness), per the TF tutorial's
    `tf.image.total_variation`, summed over the batch."""
    down = ops.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
    right = ops.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
    return ops.sum(down) + ops.sum(right)
