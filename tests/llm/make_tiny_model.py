"""Make a tiny llama model with random weights for tests against a real
llama.cpp server (llama-cpp-python's OpenAI-compatible server).

    python3 tests/llm/make_tiny_model.py [OUT.gguf]

No weights are downloaded: the tokenizer comes from one of the vocab-only
GGUF files llama.cpp keeps for its own tokenizer tests, which ship inside
the llama-cpp-python source distribution. The installed package normally
does not carry them, so the sdist of the very version installed is fetched
with pip (from the package registry, like any install) and only the vocab
file is taken out of it. Only llama-cpp-python itself is asked for as
source: `--no-binary :all:` would make pip build the sdist's build
dependencies (cmake, ninja) from source too just to read its metadata. The weights are drawn from a fixed seed, so the
same inputs make the same file. The model's answers are gibberish; what it
is for is the protocol: real SSE streaming, usage counts, /v1/models.

Default output: target/llm/tiny.gguf under the repository root. Prints the
path of the model on its last line.
"""

import hashlib
import importlib.metadata
import pathlib
import subprocess
import sys
import tarfile
import tempfile

import gguf
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "llm"
VOCAB_NAME = "ggml-vocab-llama-spm.gguf"
SEED = 20240601

# Small enough to load and answer in milliseconds; the vocabulary (32000
# tokens) dominates the size.
EMBED = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
CONTEXT = 512

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def log(*args):
    print(*args, file=sys.stderr)


def installed_version():
    return importlib.metadata.version("llama-cpp-python")


def vocab_in_installed_package():
    """The vocab file, if the installed package happens to carry one."""
    try:
        dist = importlib.metadata.distribution("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == VOCAB_NAME:
            path = pathlib.Path(dist.locate_file(f))
            if path.is_file():
                return path
    return None


def vocab_from_sdist(version):
    """Take the vocab file out of the sdist of `version`, kept under
    target/llm/ so the next run needs no network."""
    out = WORK / f"vocab-{version}-{VOCAB_NAME}"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        log(f"fetching the llama-cpp-python {version} sdist for its vocab file")
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet",
                "--no-deps", "--no-binary", "llama-cpp-python", "--dest", tmp,
                f"llama-cpp-python=={version}",
            ],
            check=True,
        )
        archives = sorted(pathlib.Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not archives:
            raise SystemExit(f"pip download left no sdist in {tmp}")
        with tarfile.open(archives[0]) as tar:
            members = [
                m for m in tar.getmembers()
                if m.isfile() and m.name.endswith("/models/" + VOCAB_NAME)
            ]
            if not members:
                raise SystemExit(f"{archives[0].name} has no {VOCAB_NAME}")
            # The shortest path is the vendored llama.cpp's own models/ copy.
            member = min(members, key=lambda m: len(m.name))
            src = tar.extractfile(member)
            partial = out.with_suffix(".partial")
            partial.write_bytes(src.read())
            partial.replace(out)
    return out


def find_vocab():
    return vocab_in_installed_package() or vocab_from_sdist(installed_version())


def build(vocab_path, out):
    reader = gguf.GGUFReader(str(vocab_path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    vocab = len(tokens)

    partial = out.with_suffix(".partial")
    w = gguf.GGUFWriter(str(partial), arch="llama")
    w.add_name("gatehouse-tiny-random-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBED)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FEED_FORWARD)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(EMBED // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    has_template = False
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        has_template |= key == "tokenizer.chat_template"
        types = field.types
        w.add_key_value(key, field.contents(), types[0], types[1] if len(types) > 1 else None)
    if not has_template:
        w.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(SEED)

    def matrix(name, rows, cols):
        # numpy shape is (out, in); half precision halves the file.
        w.add_tensor(name, (rng.standard_normal((rows, cols)) * 0.02).astype(np.float16))

    def norm(name):
        w.add_tensor(name, np.ones(EMBED, dtype=np.float32))

    matrix("token_embd.weight", vocab, EMBED)
    norm("output_norm.weight")
    matrix("output.weight", vocab, EMBED)
    for i in range(LAYERS):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight")
        norm(p + "ffn_norm.weight")
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
            matrix(p + n + ".weight", EMBED, EMBED)
        matrix(p + "ffn_gate.weight", FEED_FORWARD, EMBED)
        matrix(p + "ffn_up.weight", FEED_FORWARD, EMBED)
        matrix(p + "ffn_down.weight", EMBED, FEED_FORWARD)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    partial.replace(out)
    return vocab


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else WORK / "tiny.gguf"
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    vocab_path = find_vocab()
    vocab = build(vocab_path, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    log(
        f"vocab {vocab_path} ({vocab} tokens); model {out.stat().st_size} bytes "
        f"sha256 {digest}"
    )
    print(out)


if __name__ == "__main__":
    main()
