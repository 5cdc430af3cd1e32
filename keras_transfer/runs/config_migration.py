"""Reading a `config.json` that an earlier keras_transfer wrote into today's `RunConfig` settings."""

# What a run ran with where its config.json has no such field: its images were resized by PIL, antialiased; its
# recipe was two_phase, counted in epochs (5 by default), at batch 32.
MISSING_FIELDS = dict(antialias=True, recipe="two_phase", epochs=5, batch_size=32)


def migrate(stored, names):
    """`(settings, environment)` from a `config.json` dict: the nested form (`settings`, `environment`,
    `run_format`) or the flat one of keras_transfer 0.1.0 (settings and environment side by side).

    Args:
        stored: the `config.json` dict.
        names: `RunConfig`'s field names; a stored setting that is not one is dropped.
    """
    if "settings" in stored:
        settings, env = stored["settings"], dict(stored.get("environment") or {}, run_format=stored.get("run_format"))
    else:
        settings = {k: v for k, v in stored.items() if k in names}
        env = {k: v for k, v in stored.items() if k not in names}
    settings = {k: v for k, v in settings.items() if k in names}
    return dict(MISSING_FIELDS, **settings), env
