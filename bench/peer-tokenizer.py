"""Writes a Hugging Face tokenizer directory for the peers (guidellm, aiperf)
that need one to synthesise prompts, offline: a whitespace word-level
tokenizer over the simulator's vocabulary (harness/src/tokens.rs), so that
a peer's token counts agree with the simulator's, which counts words.

    python bench/peer-tokenizer.py OUT_DIR
"""
import json
import re
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, decoders
from transformers import PreTrainedTokenizerFast

root = Path(__file__).resolve().parent.parent
src = (root / "harness/src/tokens.rs").read_text()
block = src[src.index("pub const WORDS"):]
block = block[: block.index("];")]
words = re.findall(r'"([^"]+)"', block)
vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2}
for w in words:
    vocab.setdefault(w, len(vocab))
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
fast = PreTrainedTokenizerFast(
    tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
)
fast.save_pretrained(out)
# A config.json so that AutoTokenizer accepts the directory as a model.
(out / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
print(f"{out}: {len(vocab)} words")
