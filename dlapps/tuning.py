"""Hyperparameter search with keras-tuner: a random search whose trials the caller runs, kept in a folder that can
be resumed and is never silently reused.

We wrap keras-tuner (not replace it) only for what every app's `tune` verb needs around it: the refusal to mix two
searches in one folder, keras-tuner's progress kept off stdout (so `--json` stays one object), and trials numbered
from 1 as keras-tuner's "Running Trial #1" lines number them.
"""

import contextlib
import json
import sys
from pathlib import Path


def random_search(run_trial, output, trials, seed, objective="dev_accuracy", overwrite=False, resume=False):
    """Run `trials` random-search trials of `run_trial` in `output`, and return them best first.

    Args:
        run_trial: `run_trial(hp, trial_dir)` -> {objective: float}; `hp` is a `keras_tuner.HyperParameters`
            on which it declares its search space (`hp.Float(...)`), `trial_dir` a `pathlib.Path` for its files.
        output: the search's folder (keras-tuner's `oracle.json` and `trial_*` folders, `best_trials.json`).
        trials: the number of trials.
        seed: the random search's seed.
        objective: the name of the metric `run_trial` returns; higher is better.
        overwrite: start afresh in a folder that holds an earlier search.
        resume: continue the search the folder holds (keras-tuner skips finished trials).

    Returns:
        A list of {"trial": number from 1, objective: score, **hyperparameter values}, best first; also written to
        `output/best_trials.json`.

    Raises:
        ValueError: keras-tuner is not installed.
        FileExistsError: `output` holds an earlier search and neither `overwrite` nor `resume` is set.
    """
    try:
        import keras_tuner
    except ImportError:
        raise ValueError("tune needs keras-tuner: pip install keras-tuner") from None
    output = Path(output)
    if (output / "oracle.json").exists() and not (overwrite or resume):
        raise FileExistsError(
            f"{output} holds an earlier search ({len(list(output.glob('trial_*')))} trials); pass --resume to "
            "continue it, --overwrite to start afresh, or pick another --output"
        )

    class Tuner(keras_tuner.RandomSearch):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            return run_trial(trial.hyperparameters, Path(self.get_trial_dir(trial.trial_id)))

    tuner = Tuner(
        objective=keras_tuner.Objective(objective, direction="max"),
        max_trials=trials,
        seed=seed,
        directory=str(output.parent),
        project_name=output.name,
        overwrite=overwrite,
    )
    # keras-tuner reports progress on stdout; send it to stderr so that --json output stays one object.
    with contextlib.redirect_stdout(sys.stderr):
        tuner.search()
    best = [
        {"trial": int(t.trial_id) + 1, objective: t.score, **t.hyperparameters.values}
        for t in tuner.oracle.get_best_trials(num_trials=trials)
    ]
    (output / "best_trials.json").write_text(json.dumps(best, indent=2) + "\n")
    return best
