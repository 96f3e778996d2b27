"""The Optuna study of a search: created with its search space, objectives and FPS target
recorded, or resumed only when they are the same."""

from __future__ import annotations

from typing import Literal, cast

import optuna
from optuna.storages import BaseStorage

from codesign.context import SearchContext
from codesign.errors import UserError
from codesign.objectives import OBJECTIVES


def open_study(ctx: SearchContext, storage: BaseStorage) -> tuple[optuna.Study, bool]:
    """Create the study (``True``) or resume it (``False``); refuse to resume with another search
    space, other objectives or another FPS target."""
    name = ctx.study.name
    fps_target = ctx.study.fps
    existing = set(optuna.get_all_study_names(storage))  # (summaries would read every trial)
    fingerprint = ctx.space.fingerprint()
    mode = "hw-only" if ctx.fixed_quant is not None else "joint"
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        if attrs.get("space_fingerprint") not in (None, fingerprint):
            raise UserError(
                f"study '{name}' in this storage was run with another search space "
                f"({attrs.get('space_source')}); use a new --out/--storage or the same space"
            )
        if attrs.get("objectives") not in (None, list(ctx.objectives)) or attrs.get("mode") not in (
            None,
            mode,
        ):
            raise UserError(
                f"study '{name}' in this storage has objectives {attrs.get('objectives')} "
                f"({attrs.get('mode')}); "
                f"this run asks for {list(ctx.objectives)} ({mode})"
            )
        if attrs.get("fps_target", fps_target) != fps_target:
            raise UserError(
                f"study '{name}' in this storage was run with an FPS target of {attrs.get('fps_target')}; "
                f"this run asks for {fps_target} (use another --out/--storage for a new target)"
            )
        return study, False
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=cast("list[Literal['minimize', 'maximize']]", directions(ctx)),
        load_if_exists=True,
    )
    study.set_user_attr("space_fingerprint", fingerprint)
    study.set_user_attr("space_source", str(ctx.space.source))
    study.set_user_attr("objectives", list(ctx.objectives))
    study.set_user_attr("mode", mode)
    study.set_user_attr("fps_target", fps_target)
    study.set_user_attr("model", ctx.workload.model_name)
    study.set_user_attr("device", ctx.device.name)
    return study, True


def directions(ctx: SearchContext) -> list[str]:
    return [OBJECTIVES[o].direction for o in ctx.objectives]
