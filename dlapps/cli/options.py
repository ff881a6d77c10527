"""Options declared from an app's config dataclass: the flag is the field's name (`--people-per-batch` for
`people_per_batch`, the Python API's keyword), the default is the dataclass's value, the help comes from one table.
So the command line and `App.train(..., **options)` cannot drift apart in names or defaults.

Why our own: argparse reads no dataclass, and tyro or jsonargparse would replace our parser (its one-line errors,
its "did you mean" and a `--help` that answers before TensorFlow loads).
"""

from dlapps.cli.types import positive_float, positive_int


def add_config_options(parser, defaults, help, types=None):
    """Add one option per entry of `help`, a {field name: help text} table of the config dataclass instance
    `defaults`, in the table's order.

    Each option's default is the field's value (a list: as many values, `nargs`). Its argparse type is `types[name]`
    (an argparse type, or a list of choices), else follows the default: a whole number of at least 1
    (`positive_int`), a finite number above 0 (`positive_float`), or text.

    Raises:
        TypeError: a bool field (an on/off flag is declared by hand: `--no-augment` turns a True default off).
    """
    types = types or {}
    for name, text in help.items():
        default, options = getattr(defaults, name), {}
        if isinstance(default, list):  # a copy, so that no parse can change the dataclass's own list
            default, options["nargs"] = list(default), len(default)
        sample = default[0] if options else default
        kind = types.get(name)
        if isinstance(sample, bool) and kind is None:
            raise TypeError(f"{name}: a bool field is a flag; declare it with parser.add_argument")
        if isinstance(kind, (list, tuple)):
            options["choices"] = list(kind)
        elif kind is not None or isinstance(sample, (int, float)):
            options["type"] = kind or (positive_int if isinstance(sample, int) else positive_float)
        parser.add_argument("--" + name.replace("_", "-"), default=default, help=text, **options)
