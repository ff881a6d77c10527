"""`dlapps style train`: a feed-forward style network (Johnson et al. 2016) trained on a folder of content photos."""

import json
import shutil
from pathlib import Path

import numpy as np

from dlapps.apps.style_transfer.app import APP, PROG, _fit_max_size, _resized, load_style_model
from dlapps.cli.common import ProgressBar, counted, emit, prepare_run_folder, run_files, say, warn
from dlapps.data.images import ImageReadError, list_image_files, read_image


def _content_dataset(files, image_size, batch_size, seed):
    """Training batches: each photo resized (shorter side) and centre-cropped to image_size, decoded once into
    memory (float32 0-255; about 0.8 MB a photo at 256 pixels); unreadable photos are named and skipped."""
    import tensorflow as tf

    images = []
    progress = ProgressBar(len(files), "decoding photos")
    for path in files:
        progress.update()
        try:
            image = read_image(path)
        except ImageReadError as error:
            warn(PROG, f"skipping unreadable image: {error}")
            continue
        height, width = image.shape[:2]
        scale = image_size / min(height, width)
        size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
        resized = tf.image.resize(image, size, antialias=True)
        images.append(tf.image.resize_with_crop_or_pad(resized, image_size, image_size).numpy())
    if not images:
        raise ValueError("no readable content images")
    dataset = tf.data.Dataset.from_tensor_slices(np.stack(images)).shuffle(len(images), seed=seed)
    return dataset.batch(batch_size, drop_remainder=len(images) >= batch_size).prefetch(2), len(images)


def train(args):
    import keras

    from dlapps.backbones.vgg import build_vgg16_features
    from dlapps.cli.common import check_run_folder, to_json
    from dlapps.tasks.style_transformer import (
        CONTENT_LAYER,
        STYLE_LAYERS,
        PerceptualLoss,
        build_style_transformer,
        contact_sheet,
        stylise,
        train_style_transformer,
    )
    from dlapps.training import save_atomically

    output = check_run_folder(args, interrupted="checkpoints")
    keras.utils.set_random_seed(args.seed)
    files, problems = list_image_files(args.content)
    for _, message in problems:
        warn(PROG, f"skipping: {message}")
    dev_files, _ = list_image_files(args.dev) if args.dev else ([], [])
    held_out = {Path(f).resolve() for f in dev_files}
    files = [f for f in files if Path(f).resolve() not in held_out]
    style_name = args.name or Path(args.style).stem
    style = _resized(read_image(args.style), args.style_size) * 255.0
    dataset, count = _content_dataset(files, args.image_size, args.batch_size, args.seed)
    dev_images = [_fit_max_size(read_image(f), 256) for f in dev_files[:6]]  # shown at 256 px; no notice
    loss_network = build_vgg16_features([CONTENT_LAYER, *STYLE_LAYERS], args.weights)
    loss = PerceptualLoss(loss_network, style, args.content_weight, args.style_weight, args.tv_weight)
    model = build_style_transformer(tuple(args.filters), args.residual_blocks)
    if args.init_from:
        start, start_config = load_style_model(args.init_from)
        shape = (list(start_config["filters"]), start_config["residual_blocks"])
        if shape != (list(args.filters), args.residual_blocks):
            raise ValueError(f"--init-from {args.init_from}: its network has filters {shape[0]} and {shape[1]} "
                             f"residual blocks; pass the same --filters and --residual-blocks")  # fmt: skip
        model.set_weights(start.get_weights())
    prepare_run_folder(args, output)
    shutil.copyfile(args.style, output / f"style{Path(args.style).suffix.lower()}")
    config = {
        "app": APP,
        "style": style_name,
        "style_image": f"style{Path(args.style).suffix.lower()}",  # copied into the folder: the model's own
        "content_images": count,
        "image_size": args.image_size,
        "style_size": args.style_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "filters": args.filters,
        "residual_blocks": args.residual_blocks,
        "init_from": str(Path(args.init_from).resolve()) if args.init_from else None,
        "loss_network": f"vgg16 ({args.weights})",
        "content_layer": CONTENT_LAYER,
        "style_layers": list(STYLE_LAYERS),
        "seed": args.seed,
    }
    (output / "config.json").write_text(json.dumps(config, indent=2))
    say(
        args,
        f"{counted(count, 'content image')} at {args.image_size} px, style {style_name} at {args.style_size} px; "
        f"{counted(args.epochs, 'epoch')} of {counted(int(np.ceil(count / args.batch_size)), 'step')}; "
        f"{model.count_params():,} parameters",
    )
    steps = int(np.ceil(count / args.batch_size))
    progress = {"bar": None}

    def on_step(epoch, step, values):
        if progress["bar"] is None or progress["bar"].count >= steps:
            progress["bar"] = ProgressBar(steps, f"epoch {epoch}/{args.epochs}")
        progress["bar"].update()

    def on_epoch_end(row):
        say(
            args,
            f"epoch {row['epoch']}: loss {row['total']:.4g} (content {row['content']:.4g}, style "
            f"{row['style']:.4g}, tv {row['tv']:.4g})",
        )

    history = train_style_transformer(
        model, loss, dataset, dev_images, output, args.epochs, args.learning_rate, on_step, on_epoch_end
    )
    from dlapps.plots import plot_loss_curves

    plot_loss_curves(history, output / "training_curves.png", f"{style_name}: mean losses per epoch", x="epoch")
    if dev_images:
        contact_sheet(
            [dev_images, [stylise(model, i[None])[0].numpy() for i in dev_images]], output / "dev_contact_sheet.jpg"
        )
    metrics = {"style": style_name, "epochs": len(history), "last": history[-1] if history else None}
    (output / "metrics.json").write_text(to_json(metrics, indent=2))
    save_atomically(model, output / "model.keras")  # last: a folder with model.keras is a finished run
    metrics["output"] = str(output)
    metrics["files"] = run_files(output)
    emit(args, metrics, f"wrote {output}/: {', '.join(metrics['files'])}")
