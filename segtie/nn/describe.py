"""A tying scheme in words, its short name, and the parameter bucket of a model.

Vocabulary (STYLE.md): ``num_iterations`` uses of one kernel in a block,
``tie_levels`` one encoder kernel across levels, ``tie_decoder`` the same in the
decoder, ``num_recurrences`` passes of the whole network.

The parameter buckets (:data:`PARAM_BUCKETS`) group models by unique parameters
(``count_params()``), for filtering runs; effective parameters (every use counted)
are :func:`segtie.nn.profile.effective_parameters`.
"""

from __future__ import annotations

__all__ = ["PARAM_BUCKETS", "describe_scheme", "param_bucket", "scheme_name"]

PARAM_BUCKETS = ((10_000, "<10k"), (100_000, "10k-100k"), (1_000_000, "100k-1M"),
                 (10_000_000, "1M-10M"))
"""Upper bounds (exclusive) of the parameter buckets; larger models are ``>=10M``."""


def scheme_name(args: dict) -> str:
    """A short name of the tying scheme of ``build_unet`` arguments ``args``.

    ``plain`` (a U-Net: one use per kernel, nothing tied), else ``+``-joined parts:
    ``iter<n>`` (``num_iterations > 1``), ``levels``, ``decoder``, ``rec<R>``
    (``num_recurrences > 1``), ``bank<J>`` (``num_templates``), ``basis<s>``
    (``basis_size``; ``basis<ratio>F`` for ``basis_ratio``, with ``u<r>`` appended for
    ``basis_unique``); e.g. ``iter2``, ``iter3+levels+decoder``,
    ``iter2+levels+decoder+bank3``, ``iter2+levels+decoder+basis0.25Fu2``.
    """
    parts = [f"iter{args['num_iterations']}"] if args["num_iterations"] > 1 else []
    parts += [name for name, key in (("levels", "tie_levels"), ("decoder", "tie_decoder"))
              if args.get(key)]
    if args.get("num_recurrences", 1) > 1:
        parts.append(f"rec{args['num_recurrences']}")
    if args.get("num_templates", 0):
        parts.append(f"bank{args['num_templates']}")
    if args.get("basis_size", 0) or args.get("basis_ratio", 0):
        size = args.get("basis_size", 0) or f"{args['basis_ratio']:g}F"
        unique = args.get("basis_unique", 0)
        parts.append(f"basis{size}" + (f"u{unique}" if unique else ""))
    return "+".join(parts) or "plain"


def describe_scheme(args: dict) -> str:
    """The tying scheme of ``build_unet`` arguments ``args`` in one English sentence."""
    n, depth = args["num_iterations"], args["depth"]
    if n > 1:
        text = (f"each block applies one 3x3 kernel {n} times (num_iterations: {n}, "
                f"recurrent convolution)")
    else:
        text = "each block applies its kernel once (num_iterations: 1)"
    if args.get("tie_levels"):
        text += f"; one encoder block serves all {depth} levels (tie_levels)"
    if args.get("tie_decoder"):
        text += "; one decoder block serves every decoder level (tie_decoder)"
    templates = args.get("num_templates", 0)
    if templates:
        text += (f"; every use mixes its own kernel from its block's bank of {templates} "
                 f"shared templates (num_templates: {templates}, soft sharing)")
    if args.get("basis_size", 0) or args.get("basis_ratio", 0):
        size = (f"{args['basis_size']} filters (basis_size: {args['basis_size']})"
                if args.get("basis_size", 0) else
                f"{args['basis_ratio']:g} x its width filters (basis_ratio: "
                f"{args['basis_ratio']:g})")
        unique = args.get("basis_unique", 0)
        text += (f"; every use mixes, with its own 1x1 coefficients, its block's one shared "
                 f"basis of {size}" + (f" and {unique} filters of its own (basis_unique: "
                                       f"{unique})" if unique else "")
                 + ", Kang et al.'s shared filter basis")
        if args.get("basis_orthogonality", 0):
            text += (f", trained with their orthogonality regulariser (basis_orthogonality: "
                     f"{args['basis_orthogonality']:g})")
    recurrences = args.get("num_recurrences", 1)
    if recurrences > 1:
        text += (f"; the whole network runs {recurrences} passes with the same weights "
                 f"(num_recurrences: {recurrences})")
    if scheme_name(args) == "plain":
        text += ": a plain U-Net, nothing tied"
    return text + "."


def param_bucket(count: int) -> str:
    """The bucket of :data:`PARAM_BUCKETS` a parameter count falls in."""
    for bound, name in PARAM_BUCKETS:
        if count < bound:
            return name
    return ">=10M"
