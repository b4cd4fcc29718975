"""The reserved ids, and their tokens, of every vocabulary in scratchvae.

    0  <pad>  padding, never a word: masks and losses skip it
    1  <unk>  any word outside the vocabulary
    2  <s>    the start of a sentence (sentence vocabularies)
    3  </s>   the end of a sentence (sentence vocabularies)

The Keras-style :class:`~scratchvae.data.tokenizer.Tokenizer` of the IMDB task reserves the
first two, as Keras does (its words start at id 2); the sentence corpus's
:class:`~scratchvae.data.corpus.Vocab` reserves all four (:data:`SPECIALS`, words from id 4).
"""

from __future__ import annotations

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(len(SPECIALS))
