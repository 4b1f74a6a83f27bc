"""Token estimates for the ICL budget, without a tokenizer download.

Three characters per token is conservative: cl100k averages about four on English text and a
little over three on JSON, so a budget computed this way is not overrun by the real tokenizer.
"""

import math

CHARS_PER_TOKEN = 3.0


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
