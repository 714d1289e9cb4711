"""A reference chip's searched parameters in a search space (:func:`reference_params`): the
baselines of an experiment, ``--against`` of ``compare``, ``pareto``, ``report`` and
``recommend``, the start of ``extend``."""

from __future__ import annotations

from codesign.search.chip_file import resolve_chip, toml_kind


def reference_params(space: object, ref: str) -> dict[str, object]:
    """The searched parameters of reference ``ref`` (a catalog id, a spec-sheet chip TOML or
    a design file) in ``space`` (a :class:`~codesign.search.experiment.SearchSpace`): a design
    file's own parameters moved into the space, any other chip projected
    (:func:`~codesign.search.design.project_chip`). ValueError where a chip cannot be
    projected (no compute units or bf16 peak)."""
    from codesign.search.design import project_chip
    from codesign.search.space import project_params

    if ref.endswith(".toml") and toml_kind(ref) == "design":
        from codesign.search.design_file import load_design_file

        return project_params(space, load_design_file(ref).design)  # type: ignore[arg-type]
    return project_params(space, project_chip(resolve_chip(ref)))  # type: ignore[arg-type]
