"""`ouro data <subcommand>`: convert data into ouro's sharded format, and check a dataset.

    ouro data from-pt shards/*.pt --out /data/latents             # Ouroboros PT files
    ouro data from-images photos/ --out /data/px256 --size 256    # images + captions
    ouro data from-images photos/ --out /data/px256t --text-tokens 64   # + per-token text (MMDiT)
    ouro data from-images photos/ --out /data/px256a --size 256 --buckets auto   # multi-aspect
    ouro data from-parquet cifar10/ --label-column label --out /data/cifar --size 32
    ouro data from-parquet photos.parquet --caption-column text --out /data/pq256a --buckets auto
    ouro data check /data/latents          # or gs://bucket/latents
Converters are resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


IMAGES_HELP = """A folder of images (png, jpg, jpeg, webp, bmp, gif; subfolders too) with captions -> shards.

Captions, one per image, from the first of:
  captions.jsonl / metadata.jsonl   one JSON object per line:
                                    {"file_name": "a/b.png", "text": "a red circle"}
                                    ("file" for "file_name", "caption" for "text" also work)
  metadata.csv                      Hugging Face imagefolder's CSV: header file_name,text
                                    (or file_name,caption)
  <image>.txt                       a UTF-8 text file beside each image (a/b.png -> a/b.txt)
  <repeats>_<name>/ folders         Kohya's layout: each image repeated, same-stem .txt/.caption
Paths are relative to SRC. Every image needs a non-empty caption. Images are center-cropped,
resized (Lanczos) to --size and scaled to [-1, 1] (with --buckets: cropped the least to the
aspect bucket nearest their own, e.g. --size 32 --buckets auto -> 40x24, 32x32, 24x40); captions are embedded with Gemma-3 and
kept as text in the dataset (training samples held-out ones).

Example: ouro data from-images photos/ --out data/photos32 --size 32
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ouro data", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def converter(name: str, help_: str, description: str = "") -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help_, description=description or help_,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("--out", required=True, help="output dataset directory (local)")
        s.add_argument("--shard-size", type=int, default=4096, help="rows per shard")
        s.add_argument("--no-progress", action="store_true")
        return s

    s = converter("from-pt", "Ouroboros PT files (keys, latents NCHW fp16, embeddings) -> shards")
    s.add_argument("files", nargs="+", help="PT files, in dataset order")
    for name, help_, desc in (("from-images", "a folder of images with captions -> shards", IMAGES_HELP),
                              ("from-parquet", "parquet files / a HF save_to_disk directory -> shards", "")):
        s = converter(name, help_, desc)
        s.add_argument("src", help="input directory (or parquet file)")
        s.add_argument("--size", type=int, default=256, help="square resolution after center crop")
        s.add_argument("--autoencoder", default=None, metavar="DIR|MODULE:FN",
                       help="encode to latents with an AutoencoderKL directory (what `ouro vae train` "
                            "writes; recorded in index.json, so runs decode their samples with it), or "
                            "'package.module:function' mapping (N,H,W,3) float32 in [-1,1] to NHWC "
                            "latents; default: pixel space")
        s.add_argument("--text-tokens", type=int, default=0, metavar="T",
                       help="also store Gemma-3 per-token states of each caption, padded/cut to T "
                            "tokens, + their mask (fields ctx_tokens, ctx_mask: MMDiT "
                            "model.text_input=tokens); 0 = pooled embeddings only")
        s.add_argument("--buckets", default=None, metavar="auto|WxH,...",
                       help="multi-aspect: keep each image's aspect in the nearest of these aspect "
                            "buckets (W x H px, e.g. 32x32,40x24,24x40), or 'auto': every bucket of "
                            "area <= --size^2 on a --bucket-step grid within --max-aspect; one dataset "
                            "per bucket under OUT (static shapes: one compile per bucket)")
        s.add_argument("--bucket-step", type=int, default=None, metavar="PX",
                       help="--buckets auto: side multiple in px (default min(64, size/4), a multiple "
                            "of the autoencoder's downsampling)")
        s.add_argument("--max-aspect", type=float, default=None,
                       help="--buckets auto: largest long/short side ratio (default 2.0)")
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
    from ouro.data.convert.plan import encoder_from_spec

    common = dict(shard_size=args.shard_size, progress=progress)
    if args.cmd == "from-pt":
        index = convert.convert_pt(args.files, args.out, **common)
    else:
        encode, encoder = encoder_from_spec(args.autoencoder)
        common.update(size=args.size, encode=encode, encoder=encoder, encoder_name=args.autoencoder or "pixels",
                      text_tokens=args.text_tokens, buckets=args.buckets, bucket_step=args.bucket_step,
                      max_aspect=args.max_aspect)
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
    if hasattr(index, "buckets"):
        sizes = ", ".join(f"{b.pixels[1]}x{b.pixels[0]} px ({b.rows})" for b in index.buckets)
        print(f"ouro data {args.cmd}: wrote {index.rows} rows in {len(index.buckets)} aspect buckets to "
              f"{args.out}: {sizes}")
        return 0
    print(f"ouro data {args.cmd}: wrote {index.rows} rows in {len(index.shards)} shards to {args.out} "
          f"(fields: {', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in index.fields.items())})")
    return 0
