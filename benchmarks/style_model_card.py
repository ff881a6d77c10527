"""Write a fast style model's MODEL_CARD.md from its own files (config.json, history.json) and its measured figures.

    python benchmarks/style_model_card.py saved_models/style_transfer/starry_night --evaluate EVAL.json \
        --train-log runs/style_starry_night.log [--train-log more.log] --command "dlapps style train ..."

The figures come from `dlapps style evaluate ... --json` (dev photos) and the `/usr/bin/time -v` lines of the
training logs (wall time, peak memory); nothing is typed in by hand.
"""

import argparse
import json
import re
from pathlib import Path

PAINTINGS = {
    "starry_night": ("Vincent van Gogh, The Starry Night (1889)", "jcjohnson/neural-style, examples/inputs"),
    "great_wave": (
        "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
        "gafr/chainer-fast-neuralstyle-models, images/hokusai-style.jpg",
    ),
    "kandinsky": (
        "a Wassily Kandinsky abstract (title not given by the source)",
        "gafr/chainer-fast-neuralstyle-models, images/kandinsky.jpg",
    ),
}


def seconds_of(log):
    match = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", Path(log).read_text())
    parts = [float(p) for p in match.group(1).split(":")]
    return sum(v * 60**i for i, v in enumerate(reversed(parts)))


def peak_gb(log):
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(log).read_text())
    return int(match.group(1)) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--evaluate", type=Path, required=True, help="dlapps style evaluate --json output")
    parser.add_argument("--train-log", action="append", default=[], help="training logs with /usr/bin/time -v")
    parser.add_argument(
        "--minutes",
        type=float,
        help="the training's wall time, when no log has /usr/bin/time lines "
        "(e.g. from the run folder's times: config.json written at the start, model.keras at the end)",
    )
    parser.add_argument("--command", action="append", required=True, help="the training command(s)")
    parser.add_argument("--looks", required=True, help="what the dev contact sheet shows, judged by eye")
    args = parser.parse_args()
    config = json.loads((args.model / "config.json").read_text())
    history = json.loads((args.model / "history.json").read_text())
    evaluation = json.loads(args.evaluate.read_text())
    name = config["style"]
    painting, source = PAINTINGS.get(name, (name, "see ../shared/data/style/SOURCE.md"))
    if not args.train_log and args.minutes is None:
        parser.error("give --train-log (with /usr/bin/time -v lines) or --minutes")
    minutes = args.minutes if args.minutes is not None else sum(seconds_of(log) for log in args.train_log) / 60
    peak = (
        f"peak memory {max(peak_gb(log) for log in args.train_log):.1f} GB"
        if args.train_log
        else "peak memory not measured"
    )
    steps = len(history) * -(-config["content_images"] // config["batch_size"])
    size_mb = (args.model / "model.keras").stat().st_size / 1e6
    rows = "\n".join(f"| {r['epoch']} | {r['total']:.1f} | {r['content']:.1f} | {r['style']:.4g} | {r['tv']:.3f} |"
                     for r in history)  # fmt: skip
    per_image = "\n".join(
        f"| {Path(r['content']).name} | {r['fast']['content']:.1f} | {r['fast']['style']:.4g} | "
        f"{r['fast']['seconds'] * 1000:.0f} |"
        for r in evaluation["per_image"]
    )
    init = (
        f" It started from the weights of `{Path(config['init_from']).name}` (`--init-from`)."
        if config.get("init_from")
        else ""
    )
    commands = "\n".join(args.command)
    card = f"""# Fast style model — {name.replace("_", " ")} (Johnson et al.'s transformer network)

**What it does.** Stylises any photo in one forward pass after the style of {painting}:
`dlapps style predict PHOTO --model saved_models/style_transfer/{name}` (files, folders, videos; any size up to
`--max-size`, 1024 by default; `--strength` blends with the photo). Johnson, Alahi & Fei-Fei (2016)'s network: 9x9
convolution, two stride-2 convolutions, {config["residual_blocks"]} residual blocks, two nearest-neighbour resize +
convolution upsamplings, instance normalisation; filters {config["filters"]}; {size_mb:.1f} MB (`model.keras`).

**Data.** Style image: {painting} (public domain; file from {source}; a copy is `style.jpg`
here, resized to {config["style_size"]} px on its longest side for the Gram matrices). Content:
{config["content_images"]} photos found on this machine (`../shared/data/`: alpaca, cat_photos,
raccoon/images, fruit_detection/train, style/content), each resized and centre-cropped to
{config["image_size"]} px, with four photos of `style/content` (tubingen, golden_gate,
hoovertowernight, louvre) held out as dev; the photos keep their sources' licenses (see each
SOURCE.md) and are not shipped.

**Training.** Perceptual loss with the offline VGG16 (HED weights): content layer {config["content_layer"]}, style
layers {", ".join(config["style_layers"])}; content weight {config["content_weight"]:g}, style weight
{config["style_weight"]:g}, total variation {config["tv_weight"]:g}; Adam {config["learning_rate"]:g}, batch
{config["batch_size"]}, {len(history)} epochs = {steps:,} steps.{init} Wall time {minutes:.0f} min on 2 CPU cores
({peak}), other work sharing the CPU:

```bash
{commands}
```

| epoch | mean loss | content | style | tv |
|---|---|---|---|---|
{rows}

**Dev photos** (`dlapps style evaluate runs/style_dev --model saved_models/style_transfer/{name} --compare 0
--json`, photos at most {evaluation.get("max_size", 512)} px): mean content loss
{evaluation["fast_mean"]["content"]:.1f}, style loss {evaluation["fast_mean"]["style"]:.4g}.

| photo | content loss | style loss | one pass, ms (Keras; 2 shared cores; the first includes tracing) |
|---|---|---|---|
{per_image}

**Looks** (`dev_contact_sheet.jpg`: dev photos above, stylised below; judged by eye): {args.looks}

**Limits.** Johnson et al. trained 40,000 steps on COCO at 256 px on a GPU; this model had {steps:,} steps on a CPU,
so it is an early model: see the looks above. To train further, start a new run from this folder's weights with
`dlapps style train ... --init-from saved_models/style_transfer/{name}`.
"""
    (args.model / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.model / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
