"""`ouro data <subcommand>`: convert data into ouro's sharded format, and check a dataset.

    ouro data from-pt shards/*.pt --out /data/latents             # Ouroboros PT files
    ouro data from-images photos/ --out /data/px256 --size 256    # images + captions
    ouro data from-images photos/ --out /data/px256t --text-tokens 64   # + per-token text (MMDiT)
    ouro data from-parquet cifar10/ --label-column label --out /data/cifar --size 32
    ouro data check /data/latents          # or gs://bucket/latents
Converters are resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ouro data", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def converter(name: str, help_: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help_)
        s.add_argument("--out", required=True, help="output dataset directory (local)")
        s.add_argument("--shard-size", type=int, default=4096, help="rows per shard")
        s.add_argument("--no-progress", action="store_true")
        return s

    s = converter("from-pt", "Ouroboros PT files (keys, latents NCHW fp16, embeddings) -> shards")
    s.add_argument("files", nargs="+", help="PT files, in dataset order")
    for name, help_ in (("from-images", "a folder of images with captions -> shards"),
                        ("from-parquet", "parquet files / a HF save_to_disk directory -> shards")):
        s = converter(name, help_)
        s.add_argument("src", help="input directory (or parquet file)")
        s.add_argument("--size", type=int, default=256, help="square resolution after center crop")
        s.add_argument("--autoencoder", default=None,
                       help="'package.module:function' mapping (N,H,W,3) float32 in [-1,1] to NHWC "
                            "latents; default: pixel space")
        s.add_argument("--text-tokens", type=int, default=0, metavar="T",
                       help="also store Gemma-3 per-token states of each caption, padded/cut to T "
                            "tokens, + their mask (fields ctx_tokens, ctx_mask: MMDiT "
                            "model.text_input=tokens); 0 = pooled embeddings only")
        if name == "from-parquet":
            s.add_argument("--image-column", default="image")
            s.add_argument("--caption-column", default=None)
            s.add_argument("--label-column", default=None)
            s.add_argument("--class-names", default=None,
                           help="'imagenet' or a UTF-8 file with one class name per line")
    s = sub.add_parser("check", help="verify every shard against the index; print a summary")
    s.add_argument("dataset", help="dataset directory or URL (gs://bucket/dir)")
    s.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    progress = not args.no_progress
    if args.cmd == "check":
        from ouro.data.check import check_dataset

        print(json.dumps(check_dataset(args.dataset, progress=progress), indent=2))
        return 0
    from ouro.data import convert
    from ouro.data.convert.plan import load_encoder

    common = dict(shard_size=args.shard_size, progress=progress)
    if args.cmd == "from-pt":
        index = convert.convert_pt(args.files, args.out, **common)
    else:
        common.update(size=args.size, encode=load_encoder(args.autoencoder),
                      encoder_name=args.autoencoder or "pixels", text_tokens=args.text_tokens)
        if args.cmd == "from-images":
            index = convert.convert_images(args.src, args.out, **common)
        else:
            names = args.class_names
            if names and names != "imagenet":
                from ouro.data.convert.images import read_text

                names = [n.strip() for n in read_text(Path(names)).splitlines() if n.strip()]
            index = convert.convert_parquet(args.src, args.out, image_column=args.image_column,
                                            caption_column=args.caption_column,
                                            label_column=args.label_column, class_names=names, **common)
    print(f"ouro data {args.cmd}: wrote {index.rows} rows in {len(index.shards)} shards to {args.out} "
          f"(fields: {', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in index.fields.items())})")
    return 0
