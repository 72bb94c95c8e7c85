"""The `act2i` command.

    act2i run --profile smoke --run smoke [--fresh] [--set generate.seeds=[42,43] ...]
    act2i run --run smoke --only 03 04              rerun stages of an existing run with its own config
    act2i run --run smoke --set generate.seeds=[1] --reconfigure   change an existing run's config
    act2i profile --profile paper [--set ...]      print the resolved profile
    act2i tiny [NAME ...]                          build the tiny offline models now
    act2i figures --run smoke --name smoke         publish a run's figures into figures/smoke/
    act2i generate --run runs/NAME                 the generate stage alone; with many GPUs:
        accelerate launch --num_processes 4 -m act2i_utils.cli generate --run runs/NAME
    act2i import-images --run runs/NAME --folder DIR --mapping files.csv
    act2i select --run runs/NAME                   the select stage alone: per prompt, the rewrite a judge picks
    act2i annotate plan --budget 400 --run runs/NAME   choose the images people judge (PPI)
    act2i annotate serve|add-annotator NAME|export|status --run runs/NAME
    act2i annotate serve --study --run runs/NAME       a crowd study: workers from a Prolific/MTurk link
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import Act2iError


def run_dir_for(run: str, runs_root: str = "runs") -> Path:
    """`--run NAME` is a folder under `runs/`; a value with a slash is a path of its own."""
    return Path(run) if ("/" in run or run.startswith(".")) else Path(runs_root) / run


def _command(args) -> str:
    return "act2i " + " ".join(args.argv)


def _open_for_change(args, profile):
    """Open (or create) the run named by --run, validated and checked before anything is written."""
    from .pipeline import check_profile
    from .runs import open_run

    run = open_run(run_dir_for(args.run, args.runs_root), profile, args.set, fresh=getattr(args, "fresh", False),
                   reconfigure=args.reconfigure, command=_command(args), check=check_profile)
    if run.changed:
        print(f"act2i: changed {', '.join(run.changed)} in {run.config_path}")
    return run


def _cmd_run(args) -> None:
    from .pipeline import run_notebooks, stage_notebooks
    from .runs import RunPaths

    exists = RunPaths(run_dir_for(args.run, args.runs_root)).config_path.is_file() and not args.fresh
    run = _open_for_change(args, args.profile or (None if exists else "smoke"))
    notebooks = stage_notebooks(args.notebooks)
    if args.only:
        wanted = set(args.only)
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted or nb.stem in wanted or nb.name in wanted]
    if not notebooks:
        raise Act2iError(f"No stage notebooks to run in {args.notebooks} (expected files named like 01_build_benchmark.ipynb).")
    print(f"act2i: run {run.root} with profile '{run.config.name}' ({len(notebooks)} notebooks)")
    run_notebooks(run, notebooks, progress=not args.quiet)  # the notebooks reuse the config.yaml just written
    print(f"act2i: finished; outputs in {run.root}")


def _open(args):
    return _open_for_change(args, args.profile or None)


def _cmd_generate(args) -> None:
    from . import generate

    manifest = generate.run(_open(args), progress=not args.quiet)
    if manifest is not None:
        print(f"act2i: {len(manifest)} images in the manifest")


def _cmd_select(args) -> None:
    from . import select

    chosen = select.run(_open(args), progress=not args.quiet)
    for note in chosen.notes:
        print(f"act2i: {note}")
    if len(chosen.selection):
        print(f"act2i: {len(chosen.selection)} selected images ({', '.join(dict.fromkeys(chosen.selection['variant']))}) "
              f"from {len(chosen.candidates)} candidates")


def _cmd_import_images(args) -> None:
    from . import generate

    manifest = generate.import_images(_open(args), args.folder, args.mapping, replace=args.replace)
    print(f"act2i: {len(manifest)} images in the manifest")


def _cmd_annotate(args) -> None:
    from .annotate import labelstudio, study
    from .runs import open_run

    readonly = args.action == "status"
    run = open_run(run_dir_for(args.run, args.runs_root), readonly=readonly, command=None if readonly else _command(args))
    overlap = args.overlap or run.config.annotate.overlap
    seed = run.config.annotate.seed
    if args.action == "plan":
        from .annotate.plan import plan

        if not args.budget:
            raise Act2iError("plan needs --budget: how many images people will judge, e.g. --budget 400.")
        chosen = plan(run, args.budget, metric=args.metric)
        print(f"act2i: {int(chosen['selected'].sum())} of {len(chosen)} images chosen for people "
              f"(expected {chosen['inclusion_prob'].sum():.0f}) -> {run.annotation_plan_path}; `annotate serve` serves them")
    elif args.action == "serve":
        print(study.serve_banner(args.host, args.port))
        study.serve(run.root, args.host, args.port, overlap, seed, study=args.study, root_path=args.root_path,
                    forwarded_allow_ips=args.forwarded_allow_ips, pair_mode=args.pairs)
    elif args.action == "add-annotator":
        if not args.name:
            raise Act2iError("add-annotator needs a name: act2i annotate add-annotator NAME --run runs/NAME.")
        link = study.add_annotator(run.root, args.name, overlap, seed, args.host, args.port, rotate=args.rotate)
        print(f"Personal link for {args.name} (keep it secret; it is their password):\n{link}")
    elif args.action == "export":
        for path in study.export(run.root):
            print(f"act2i: wrote {path}")
    elif args.action == "status":
        summary, people = study.status(run.root)
        print(f"Images rated by two or more annotators: {summary['images_rated_twice_or_more']}")
        print(f"Fleiss' kappa: {summary['fleiss_kappa']:.3f} over {summary['fleiss_images']} images "
              f"with {summary['fleiss_raters_per_image']} ratings each")
        print(f"Krippendorff's alpha (nominal): {summary['krippendorff_alpha']:.3f}")
        excluded = people[people["excluded"].fillna(False).astype(bool)] if len(people) else people
        if len(excluded):
            print(f"Excluded by the gold rule ({len(excluded)} of {len(people)} raters; their answers are kept, not used):")
            for name, reason in excluded["reason"].items():
                print(f"  {name}: {reason}")
        print(people.to_string() if len(people) else "No answers yet.")
    elif args.action == "labelstudio-export":
        out = Path(args.out or run.root / "labelstudio")
        print(f"act2i: wrote {labelstudio.export_tasks(run.root, out)} and labeling_config.xml")
    elif args.action == "labelstudio-import":
        if not args.file:
            raise Act2iError("labelstudio-import needs --file: the JSON export of your Label Studio project.")
        print(f"act2i: stored {labelstudio.import_results(run.root, Path(args.file))} answers from {args.file}")


def _cmd_figures(args) -> None:
    from .analysis.publish import publish_figures
    from .config import REPO_ROOT
    from .runs import open_run

    run = open_run(run_dir_for(args.run, args.runs_root), readonly=True)
    target = Path(args.out or REPO_ROOT / "figures") / args.name
    written = publish_figures(run, target, pdf=args.pdf)
    print(f"act2i: published {len(written) - 1} files and SOURCE.md from {run.root} into {target}")


def _cmd_profile(args) -> None:
    from . import config as cfg
    from .pipeline import check_profile

    profile = cfg.load_profile(args.profile, args.set)
    check_profile(profile)
    print(cfg.dump(profile), end="")


def _cmd_tiny(args) -> None:
    import time

    from .tiny import BUILDERS, DESCRIPTIONS, tiny_path

    for name in args.names or list(BUILDERS):
        t0 = time.perf_counter()
        path = tiny_path(name)
        print(f"tiny:{name:<7} {time.perf_counter() - t0:5.2f} s  {path}  ({DESCRIPTIONS[name]})")


def build_parser() -> argparse.ArgumentParser:
    from .pipeline import NOTEBOOKS

    parser = argparse.ArgumentParser(prog="act2i", description="Study how text-to-image models depict actions.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the stage notebooks with papermill into runs/NAME")
    run.add_argument("--profile", default=None,
                     help="configs/<profile>.yaml or a path, for a new run (default: smoke); an existing run keeps its own")
    run.add_argument("--run", default="smoke", help="run name under --runs-root, or a path (default: smoke)")
    run.add_argument("--runs-root", default="runs", help="folder that holds runs (default: runs)")
    run.add_argument("--fresh", action="store_true", help="delete the run directory first instead of resuming")
    run.add_argument("--reconfigure", action="store_true",
                     help="let --profile/--set change an existing run's config (prints the changed keys)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a profile value, e.g. generate.seeds=[42,43] (repeatable)")
    run.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (e.g. 01 03)")
    run.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of stage notebooks")
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    run.set_defaults(func=_cmd_run)

    gen = sub.add_parser("generate", help="run the generate stage alone (use under `accelerate launch` for many GPUs)")
    imp = sub.add_parser("import-images", help="add images made elsewhere to a run's layout and manifest")
    for p in (gen, imp):
        p.add_argument("--run", required=True, help="run name under --runs-root, or a path")
        p.add_argument("--runs-root", default="runs")
        p.add_argument("--profile", default="", help="profile to (re)apply; default: the run's own resolved profile")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--reconfigure", action="store_true", help="let --profile/--set change the run's config")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    gen.set_defaults(func=_cmd_generate)
    sel = sub.add_parser("select", help="run the select stage alone: per prompt, the rewrite and image a judge picks")
    sel.add_argument("--run", required=True, help="run name under --runs-root, or a path")
    sel.add_argument("--runs-root", default="runs")
    sel.add_argument("--profile", default="", help="profile to (re)apply; default: the run's own resolved profile")
    sel.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sel.add_argument("--reconfigure", action="store_true", help="let --profile/--set change the run's config")
    sel.add_argument("--quiet", action="store_true", help="no progress bars")
    sel.set_defaults(func=_cmd_select)
    imp.add_argument("--folder", required=True, help="folder holding the images")
    imp.add_argument("--mapping", required=True, help="CSV: file, model, variant, id, seed [, prompt]")
    imp.add_argument("--replace", action="store_true", help="overwrite images the run already has")
    imp.set_defaults(func=_cmd_import_images)

    ann = sub.add_parser("annotate", help="the human study: serve, add-annotator, export, status, Label Studio")
    ann.add_argument("action", choices=["plan", "serve", "add-annotator", "export", "status", "labelstudio-export",
                                        "labelstudio-import"])
    ann.add_argument("name", nargs="?", help="annotator name (add-annotator)")
    ann.add_argument("--run", required=True, help="run name under --runs-root, or a path")
    ann.add_argument("--runs-root", default="runs")
    ann.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    ann.add_argument("--port", type=int, default=8765)
    ann.add_argument("--overlap", type=int, default=None, help="annotators per image (default: annotate.overlap)")
    ann.add_argument("--out", help="folder for labelstudio-export (default: runs/NAME/labelstudio)")
    ann.add_argument("--file", help="Label Studio JSON export for labelstudio-import")
    ann.add_argument("--budget", type=int, help="plan: how many images people will judge")
    ann.add_argument("--metric", help="plan: the judge whose uncertainty guides the plan (default: analyze.judge_metric)")
    ann.add_argument("--rotate", action="store_true", help="add-annotator: give an existing annotator a new link (the old one stops working)")
    ann.add_argument("--study", action="store_true",
                     help="serve: a crowd study: workers come through the study link (docs/annotation.md)")
    ann.add_argument("--pairs", action="store_true",
                     help="serve: people compare two images of one prompt (the planned pairs, docs/annotation.md)")
    ann.add_argument("--root-path", default="", help="serve: the path the app lives under behind a reverse proxy, e.g. /act2i")
    ann.add_argument("--forwarded-allow-ips", default=None,
                     help="serve: proxies whose X-Forwarded-Proto is trusted (default 127.0.0.1)")
    ann.set_defaults(func=_cmd_annotate)

    fig = sub.add_parser("figures", help="publish a run's figures into figures/NAME with a SOURCE.md")
    fig.add_argument("--run", required=True, help="run name under --runs-root, or a path")
    fig.add_argument("--runs-root", default="runs")
    fig.add_argument("--name", required=True, help="folder under figures/ (e.g. smoke, paper-2026-11)")
    fig.add_argument("--out", help="parent folder (default: the checkout's figures/)")
    fig.add_argument("--pdf", action="store_true", help="copy the PDFs too (PNGs only by default, to stay small)")
    fig.set_defaults(func=_cmd_figures)

    prof = sub.add_parser("profile", help="print a profile after overrides, validated")
    prof.add_argument("--profile", default="smoke")
    prof.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    prof.set_defaults(func=_cmd_profile)

    tiny = sub.add_parser("tiny", help="build the tiny offline models into $ACT2I_CACHE")
    tiny.add_argument("names", nargs="*", help="which ones (default: all)")
    tiny.set_defaults(func=_cmd_tiny)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        args.func(args)
    except Act2iError as err:
        print(f"act2i: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("act2i: interrupted; run the same command again to resume where it stopped.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
