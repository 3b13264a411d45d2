"""The `photoseek` command. Each subcommand fills one typed request from the config file and its flags."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from photoseek.config_file import build_request, read_config


def _add_synth(sub) -> None:
    data = sub.add_parser("data", help="make or inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("synth", help="write the deterministic synthetic scene dataset (Karpathy format)")
    p.add_argument("out", help="folder to write (images/ and dataset_synth.json)")
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p = dsub.add_parser("check", help="detect a dataset's format and say what it holds")
    p.add_argument("path")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train encoders from scratch with Ray Train")
    p.add_argument("--data", help="dataset folder (Karpathy JSON, Flickr30k token file, COCO, captions.jsonl)")
    p.add_argument("--preset", help="model preset name or YAML file (default clip-resnet); see `photoseek presets`")
    p.add_argument("--out", help="model directory; running again with the same --out resumes")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-minutes", type=float, help="wall-clock budget; the best model so far is kept")
    p.add_argument("--workers", type=int, help="Ray Train workers (default 1)")
    p.add_argument("--gpu", action="store_true", default=None, help="train on GPUs (one per worker), mixed precision")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for GPUs and for CPUs with native bf16)")
    p.add_argument("--seed", type=int)
    p.add_argument("--ray-address", help="join a running Ray cluster instead of starting a local one")
    p.add_argument("--fresh", action="store_true", default=None, help="discard an earlier run in --out")
    p.add_argument("--max-failures", type=int, help="worker failures to recover from (restart at last checkpoint)")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="Recall@K of a model on a dataset split")
    p.add_argument("--model", help="model directory")
    p.add_argument("--data", help="dataset folder")
    p.add_argument("--split", help="default test")
    p.add_argument("--limit", type=int, help="use at most this many images of the split")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", nargs="?", const="", default=None,
                   help="draw the embedding-space map (default MODEL/embedding_map_SPLIT.png)")


def _add_index(sub) -> None:
    p = sub.add_parser("index", help="embed a folder or manifest of photos into Qdrant (resumable)")
    p.add_argument("path", nargs="?", help="a folder (walked recursively) or a .csv/.jsonl manifest")
    p.add_argument("--model", help="model directory")
    _add_store_flags(p)
    p.add_argument("--collection", help="alias to index under (default photos); the collection is per model")
    p.add_argument("--runner", choices=["local", "ray"], help="local (threads, default) or ray (Ray Data actors)")
    p.add_argument("--json-report", help="write the run's report as JSON to this file")
    p.add_argument("--prune", action="store_true", default=None, help="remove points whose files are gone (below PATH for a folder; "
                   "for a manifest, every indexed file it does not list)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--decode-threads", type=int)
    p.add_argument("--actors", type=int, help="ray runner: embed actors")
    p.add_argument("--gpu", action="store_true", default=None, help="ray runner: one GPU per embed actor")
    p.add_argument("--ray-address")
    p.add_argument("--max-pixels", type=int, help="refuse images with more pixels (decompression bombs)")
    p.add_argument("--max-bytes", type=int, help="refuse files larger than this")
    p.add_argument("--max-decode-seconds", type=float)
    p = sub.add_parser("info", help="list the store's collections with their model and point counts")
    _add_store_flags(p)
    p.add_argument("--json", action="store_true")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run the search service (HTTP + web page, gRPC) on Ray Serve")
    p.add_argument("--model", help="model directory (the one the photos were indexed with)")
    _add_store_flags(p)
    p.add_argument("--collection", help="alias the photos were indexed under (default photos)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; anything else requires API keys)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 9000)")
    p.add_argument("--api-keys-file", help="file with one API key per line (else $PHOTOSEEK_API_KEYS)")
    p.add_argument("--max-upload-bytes", type=int, help="largest image upload (default 10 MiB)")
    p.add_argument("--request-timeout-s", type=float)
    p.add_argument("--max-ongoing-requests", type=int, help="requests one ingress replica works on at once (32)")
    p.add_argument("--max-queued-requests", type=int, help="queue per ingress replica before answering 503 (64)")
    p.add_argument("--topology", choices=["fused", "split"],
                   help="fused: one deployment does it all (default with --store); split: encoder, searcher and "
                        "ingress deployments scale apart (default with --qdrant-url)")
    p.add_argument("--ingress-replicas", type=int)
    p.add_argument("--text-replicas", type=int)
    p.add_argument("--photo-roots", nargs="+", help="only serve thumbnails of files below these folders")
    p.add_argument("--gpu", action="store_true", default=None, help="encoders on a GPU")
    p.add_argument("--ray-address")
    p = sub.add_parser("search", help="query a running service and print the results")
    p.add_argument("query", nargs="?", help="text to search for")
    p.add_argument("--image", help="search by this image file instead")
    p.add_argument("--id", help="more like this indexed photo")
    p.add_argument("--server", default="http://127.0.0.1:8000", help="HTTP service (default %(default)s)")
    p.add_argument("--grpc", help="HOST:PORT: ask over gRPC instead")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--path-prefix", help="only photos below this folder")
    p.add_argument("--taken-after", help="ISO date")
    p.add_argument("--taken-before", help="ISO date")
    p.add_argument("--api-key", help="bearer key (default $PHOTOSEEK_API_KEY)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def _add_store_flags(p) -> None:
    p.add_argument("--store", help="embedded store folder (default ./photoseek-data)")
    p.add_argument("--qdrant-url", help="use a Qdrant server instead (API key from $QDRANT_API_KEY)")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="make data, train a small model, evaluate it, say where to look")
    p.add_argument("--out", default="demo", help="folder for everything the demo writes (default ./demo)")
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=3.0)
    p.add_argument("--port", type=int, default=8000, help="HTTP port of the service it starts")
    p.add_argument("--grpc-port", type=int, default=9000)
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=None,
                   help="keep serving until Ctrl-C (default: when run from a terminal)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="photoseek", description=__doc__)
    ap.add_argument("--config", help="YAML config file (default ./photoseek.yaml when present)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list the model presets")
    _add_synth(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_index(sub)
    _add_serve(sub)
    _add_demo(sub)
    return ap


def cmd_presets(args, config) -> int:
    from photoseek.encoders.registry import get_preset, list_presets

    for name in list_presets():
        print(f"{name:20s} {get_preset(name).description}")
    return 0


def cmd_data(args, config) -> int:
    if args.data_command == "check":
        from photoseek.encoders.data.formats import load_captions

        cs = load_captions(args.path)
        print(cs.summary())
        for problem in cs.problems[:20]:
            print(f"  {problem}")
        for path in cs.missing_images[:5]:
            print(f"  missing: {path}")
        return 0
    from photoseek.encoders.data.synth import SynthConfig, write_synthetic
    from photoseek.progress import Progress

    progress = Progress("writing synthetic scenes", total=args.images, unit="images")
    summary = write_synthetic(Path(args.out), SynthConfig(images=args.images, size=args.size, seed=args.seed),
                              progress=lambda n: progress.update(n - progress.done))
    progress.close()
    print(json.dumps(summary))
    return 0


def cmd_train(args, config) -> int:
    from photoseek.encoders.train.trainer import TrainRequest, train

    req = build_request(TrainRequest, config, "train", vars(args))
    summary = train(req)
    print(f"model saved in {summary['out']} ({summary.get('model_id', 'no model yet')}); "
          f"training log train_log.jsonl, curve training_curve.png there")
    print(json.dumps(summary, default=str))
    return 0


def cmd_eval(args, config) -> int:
    from photoseek.encoders.eval_run import EvalRequest, evaluate
    from photoseek.encoders.evaluate import format_metrics

    flags = dict(vars(args))
    flags["quiet"] = args.json or None
    if args.plot == "":
        flags["plot"] = None
    req = build_request(EvalRequest, config, "eval", flags)
    if args.plot == "":
        req.plot = str(Path(req.model) / f"embedding_map_{req.split}.png")
    result = evaluate(req)
    if args.json:
        keys = [k for k in ("i2t", "t2i", "t2t", "rsum") if k in result]
        print(json.dumps({k: result[k] for k in keys}))
    else:
        print(f"{result['model_id']} on {req.split}: {result['images']} images, {result['captions']} captions")
        print(format_metrics(result))
        if result.get("plot"):
            print(f"embedding map: {result['plot']}")
    return 0


def cmd_index(args, config) -> int:
    from photoseek.indexer.pipeline import IndexRequest, index

    req = build_request(IndexRequest, config, "index", vars(args))
    report = index(req)
    print(report.summary())
    if req.json_report:
        print(f"report written to {req.json_report}")
    return 0


def cmd_info(args, config) -> int:
    from photoseek.config_file import section_value
    from photoseek.indexer.store import open_store

    store_dir = args.store or section_value(config, "index", "store")
    url = args.qdrant_url or section_value(config, "index", "qdrant_url")
    with open_store(store_dir, url) as store:
        infos = store.collections()
    if args.json:
        print(json.dumps([vars(i) for i in infos]))
        return 0
    if not infos:
        print("no collections yet; index photos with `photoseek index PATH --model MODEL_DIR`")
    for i in infos:
        aliases = f" (alias {', '.join(i.aliases)})" if i.aliases else ""
        print(f"{i.name}{aliases}: {i.points} photos, {i.dim}-d, model {i.model_id}")
    return 0


def cmd_serve(args, config) -> int:
    from photoseek.serving.service import ServeRequest, serve_forever

    flags = dict(vars(args))
    if flags.get("store") is None and flags.get("qdrant_url") is None:  # the index section's store by default
        from photoseek.config_file import section_value

        flags["store"] = section_value(config, "index", "store")
        flags["qdrant_url"] = section_value(config, "index", "qdrant_url")
    req = build_request(ServeRequest, config, "serve", flags)
    return serve_forever(req, on_ready=lambda text: print(text, flush=True))


def cmd_search(args, config) -> int:
    from photoseek.serving.client import ClientError, SearchCall, format_table, search

    spec = {k: v for k, v in (("path_prefix", args.path_prefix), ("taken_after", args.taken_after),
                              ("taken_before", args.taken_before)) if v}
    call = SearchCall(query=args.query, image=args.image, id=args.id, server=args.server, grpc=args.grpc,
                      limit=args.limit, filter=spec or None, api_key=args.api_key)
    try:
        reply = search(call)
    except ClientError as e:
        print(f"photoseek search: {e}", file=sys.stderr)
        return 1
    print(json.dumps(reply, indent=1) if args.json else format_table(reply))
    return 0


def cmd_demo(args, config) -> int:
    from photoseek.demo import run_demo

    return run_demo(Path(args.out), images=args.images, max_minutes=args.max_minutes, port=args.port,
                    grpc_port=args.grpc_port, wait=args.wait)


COMMANDS = {"presets": cmd_presets, "data": cmd_data, "train": cmd_train, "eval": cmd_eval, "index": cmd_index,
            "info": cmd_info, "serve": cmd_serve, "search": cmd_search, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    from photoseek.indexer.store.base import StoreError

    args = parser().parse_args(argv)
    try:
        config = read_config(args.config)
        return COMMANDS[args.command](args, config)
    except (ValueError, FileNotFoundError, StoreError) as exc:
        print(f"photoseek {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"photoseek {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
