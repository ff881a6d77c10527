"""Fast neural style transfer (Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer"):
an image transformer network trained once per style with the perceptual losses of a fixed VGG16, then stylising any
photo in one forward pass.

Network: Johnson et al.'s shape (9x9 conv, two stride-2 convs, residual blocks, two upsamplings, 9x9 conv) with
instance normalisation (Ulyanov et al. 2016) instead of batch norm, and upsampling by nearest-neighbour resize then
convolution instead of transposed convolution (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
Instance normalisation is Keras' GroupNormalization with one group per channel (the same formula).
Pixels: float32 0-255 RGB in and out; `stylise` is the one rule (pad to a multiple of 4, run, crop, blend, round to
uint8) used by predict and by every export.
"""

import json
import weakref

import keras
import tensorflow as tf
from keras import layers

# Johnson et al.'s content layer (relu2_2) and style layers (relu1_2, relu2_2, relu3_3, relu4_3), in Keras' names.
CONTENT_LAYER = "block2_conv2"
STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")


@keras.saving.register_keras_serializable(package="dlapps")
class ReflectionPadding2D(layers.Layer):
    """Pads height and width by mirroring the image (Keras has only zero padding)."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        grow = lambda size: None if size is None else size + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def instance_norm(name):
    """Instance normalisation: each image's each channel to zero mean, unit variance over its positions."""
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def _conv_block(x, filters, kernel_size, stride, name, activation=True):
    pad = kernel_size // 2
    # Reflection padding, as Johnson et al.'s torch code: no dark frame around the stylised image.
    x = ReflectionPadding2D(pad, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, name=f"{name}_conv")(x)
    x = instance_norm(f"{name}_in")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if activation else x


def build_style_transformer(filters=(32, 64, 128), residual_blocks=5, name="style_transformer"):
    """The image transformer: (B, H, W, 3) float32 0-255 -> (B, H, W, 3) float32 0-255, H and W multiples of 4.

    Args:
        filters: channels at full, half and quarter resolution (Johnson et al.: 32, 64, 128).
        residual_blocks: residual blocks at quarter resolution (Johnson et al.: 5).
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_in")(inputs)
    x = _conv_block(x, filters[0], 9, 1, "down1")
    x = _conv_block(x, filters[1], 3, 2, "down2")
    x = _conv_block(x, filters[2], 3, 2, "down3")
    for index in range(residual_blocks):
        shortcut = x
        x = _conv_block(x, filters[2], 3, 1, f"res{index + 1}a")
        x = _conv_block(x, filters[2], 3, 1, f"res{index + 1}b", activation=False)
        x = layers.Add(name=f"res{index + 1}_add")([shortcut, x])
    x = layers.UpSampling2D(2, interpolation="nearest", name="up1_resize")(x)
    x = _conv_block(x, filters[1], 3, 1, "up1")
    x = layers.UpSampling2D(2, interpolation="nearest", name="up2_resize")(x)
    x = _conv_block(x, filters[0], 3, 1, "up2")
    x = ReflectionPadding2D(4, name="out_pad")(x)
    x = layers.Conv2D(3, 9, name="out_conv")(x)
    outputs = layers.Activation("sigmoid", name="out_sigmoid")(x)
    outputs = layers.Rescaling(255.0, name="scale_out")(outputs)
    return keras.Model(inputs, outputs, name=name)


_GRAPHS = weakref.WeakKeyDictionary()


def _as_graph(model):
    """The model's forward pass as one tf.function for every image size (traced once): a pass of the light network on
    a 512x512 photo takes about 0.25 s this way against 0.33 s called eagerly, layer by layer (2 CPU cores)."""
    if model not in _GRAPHS:
        signature = [tf.TensorSpec((None, None, None, 3), tf.float32)]
        network = weakref.ref(model)  # the function must not hold its key alive, or the entry would never go
        _GRAPHS[model] = tf.function(lambda images: network()(images, training=False), input_signature=signature)
    return _GRAPHS[model]


def pad_to_multiple_of_4(images):
    """Reflection-pad H and W of float (B, H, W, C) images up to multiples of 4 (the transformer networks halve
    them twice); returns (padded, height, width), crop back with [:, :height, :width]."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    # (4 - n % 4) % 4, not (-n) % 4: tf2onnx turns floormod into ONNX's C-style Mod, which gives -1 for -301 % 4 (a
    # negative pad that crops a row, and a broadcast error in ONNX Runtime for sides that are not multiples of 4).
    pad_h, pad_w = (4 - height % 4) % 4, (4 - width % 4) % 4
    return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT"), height, width


def stylise(model, images, strength=1.0):
    """The one stylising rule: uint8 (B, H, W, 3) RGB of any size -> uint8 (B, H, W, 3).

    Reflection-pads H and W up to multiples of 4, runs the network, crops back, blends with the input by
    `strength` (1: all style, 0: the photo), rounds to uint8.
    """
    pixels = tf.cast(tf.convert_to_tensor(images), tf.float32)
    padded, height, width = pad_to_multiple_of_4(pixels)
    styled = _as_graph(model)(padded)[:, :height, :width, :]
    blended = strength * styled + (1.0 - strength) * pixels
    return tf.cast(tf.clip_by_value(tf.round(blended), 0.0, 255.0), tf.uint8)


class PerceptualLoss:
    """Johnson et al.'s training loss: content_weight * J_content (CONTENT_LAYER) + style_weight * mean over
    STYLE_LAYERS of J_style (Gram matrices of the one style image) + tv_weight * total variation per pixel.

    `loss_network` is a frozen VGG16 feature dict model (dlapps.backbones.vgg.build_vgg16_features) taking 0-255
    pixels; `style` float32 (1, h, w, 3) 0-255. Calling it on (content, generated) batches (B, H, W, 3) 0-255 returns
    (total, content, style, tv) scalars.
    """

    def __init__(
        self,
        loss_network,
        style,
        content_weight,
        style_weight,
        tv_weight,
        content_layer=CONTENT_LAYER,
        style_layers=STYLE_LAYERS,
    ):
        from dlapps.losses.style import gram_matrix

        self.network, self.content_layer, self.style_layers = loss_network, content_layer, tuple(style_layers)
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        features = loss_network(style)
        self.style_grams = {name: gram_matrix(features[name]) for name in self.style_layers}

    def __call__(self, content, generated):
        from dlapps.losses.style import content_loss, style_loss, total_variation_loss

        target = self.network(content)[self.content_layer]
        features = self.network(generated)
        j_content = content_loss(target, features[self.content_layer])
        j_style = tf.add_n([style_loss(self.style_grams[n], features[n]) for n in self.style_layers]) / len(
            self.style_layers
        )
        j_tv = total_variation_loss(generated / 255.0) / tf.cast(tf.size(generated) / 3, tf.float32)
        content_weight, style_weight, tv_weight = self.weights
        return content_weight * j_content + style_weight * j_style + tv_weight * j_tv, j_content, j_style, j_tv


def contact_sheet(rows, path, labels=None, height=160):
    """Save images side by side, one row per list in `rows` (uint8 (H, W, 3) arrays), each scaled to `height`."""
    import numpy as np
    from PIL import Image, ImageDraw

    lines = []
    for row in rows:
        scaled = [
            Image.fromarray(np.asarray(image)).resize((max(1, round(image.shape[1] * height / image.shape[0])), height))
            for image in row
        ]
        line = Image.new("RGB", (sum(i.width for i in scaled) + 4 * (len(scaled) - 1), height), "white")
        x = 0
        for image in scaled:
            line.paste(image, (x, 0))
            x += image.width + 4
        lines.append(line)
    sheet = Image.new("RGB", (max(line.width for line in lines), sum(l.height + 4 for l in lines)), "white")  # noqa: E741
    y = 0
    for index, line in enumerate(lines):
        sheet.paste(line, (0, y))
        if labels:
            ImageDraw.Draw(sheet).text((4, y + 4), labels[index], fill=(255, 255, 255))
        y += line.height + 4
    sheet.save(path)
    return path


def train_style_transformer(
    model, loss, dataset, dev_images, output, epochs, learning_rate, on_step=None, on_epoch_end=None
):
    """Train `model` on batches of content images (float32 (B, H, W, 3) 0-255) against `loss` (PerceptualLoss).

    Resumable: the model, Adam's state and the epoch count are checkpointed in `output/checkpoints` after every
    epoch (tf.train.CheckpointManager) and restored when present. TensorBoard scalars go to `output/logs`; after each
    epoch the dev images are stylised into `output/dev_epoch<N>.jpg`. Returns the per-epoch mean losses.
    """
    import numpy as np

    optimizer = keras.optimizers.Adam(learning_rate)
    epoch = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, str(output / "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        # expect_partial: Adam's slots are created lazily at the first step, so they are restored then.
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
    writer = tf.summary.create_file_writer(str(output / "logs"))
    history_file = output / "history.json"
    history = json.loads(history_file.read_text())[: int(epoch)] if history_file.exists() else []

    @tf.function
    def step(content):
        with tf.GradientTape() as tape:
            generated = model(content, training=True)
            total, j_content, j_style, j_tv = loss(content, generated)
        gradients = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return total, j_content, j_style, j_tv

    while int(epoch) < epochs:
        sums, count = np.zeros(4), 0
        for batch in dataset:
            values = np.array([float(v) for v in step(batch)])
            sums, count = sums + values, count + 1
            if on_step:
                on_step(int(epoch) + 1, count, values)
        means = dict(zip(("total", "content", "style", "tv"), (sums / max(count, 1)).tolist(), strict=True))
        epoch.assign_add(1)
        with writer.as_default():
            for key, value in means.items():
                tf.summary.scalar(f"loss/{key}", value, step=int(epoch))
        history.append({"epoch": int(epoch), **means})
        history_file.write_text(json.dumps(history, indent=2))
        manager.save()
        if dev_images:
            styled = [stylise(model, image[None])[0].numpy() for image in dev_images]
            contact_sheet([dev_images, styled], output / f"dev_epoch{int(epoch):03d}.jpg")
        if on_epoch_end:
            on_epoch_end(history[-1])
    return history
