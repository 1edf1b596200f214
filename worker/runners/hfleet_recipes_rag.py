# SPDX-License-Identifier: MIT
"""RAG models (retrieval-augmented generation) without a dataset: a document
index of random documents held in memory and searched on the host.

transformers' RagModel asks its retriever, inside forward(), for the
n_docs documents nearest to the question encoder's output, then runs its
generator over each question joined with each document and scores the
documents.  The retriever transformers ships (RagRetriever) needs the
`datasets` and `faiss` packages and an index from the Hub (wiki_dpr, or its
dummy copy): none is on a worker that runs offline, so the model could not
run at all.  SyntheticIndex answers RagModel's call with what RagRetriever
returns (context ids and mask, the documents' embeddings and ids), from
random documents and embeddings made once, found by exact inner-product
search on the host, as faiss's flat index finds them.  A test or benchmark
of a RAG model therefore runs everything a RAG forward pass runs on a
device (the question encoder, the copy of its output to the host, the
search, the generator over n_docs contexts a question, the document
scores); what it does not measure is a real index's search time.

Part of the recipe table (hfleet_recipes.py joins RECIPES into its own);
built on hfleet_recipe_base.  Torch only through the Ctx and the torch
module handed to SyntheticIndex.
"""

from __future__ import annotations

from hfleet_recipe_base import Recipe, _get, _sub

# Documents in the synthetic index: more than any n_docs a config asks
# (RagConfig's default is 5), few enough that the search is not the figure.
INDEX_DOCS = 64
# Ids below this are the generator's special tokens in BART-style
# vocabularies (bos, pad, eos, unk): documents are made of the others.
FIRST_WORD_ID = 4


class SyntheticIndex:
    """A RagRetriever stand-in: `index(question_input_ids, question_hidden_states,
    prefix=None, n_docs=None, return_tensors="pt")` -> the dict RagModel
    reads.  question_hidden_states is the host copy RagModel makes (a numpy
    array); the results are host tensors, which RagModel moves to its
    device."""

    def __init__(self, torch, docs, dim, doc_len, vocab, seed=1):
        self.torch = torch
        g = torch.Generator(device="cpu").manual_seed(seed)
        self.embeds = torch.randn(docs, dim, generator=g)
        self.tokens = torch.randint(FIRST_WORD_ID, max(int(vocab), FIRST_WORD_ID + 1), (docs, doc_len), generator=g)

    def __call__(self, question_input_ids, question_hidden_states, prefix=None, n_docs=None, return_tensors="pt"):
        torch = self.torch
        q = torch.as_tensor(question_hidden_states, dtype=torch.float32)
        if q.dim() != 2 or q.shape[1] != self.embeds.shape[1]:
            raise ValueError(f"question embeddings of shape {tuple(q.shape)}; the index holds "
                             f"{tuple(self.embeds.shape)}")
        k = min(int(n_docs or 5), self.embeds.shape[0])
        ids = (q @ self.embeds.T).topk(k, dim=1).indices
        context = self.tokens[ids].reshape(-1, self.tokens.shape[1])
        return {"context_input_ids": context, "context_attention_mask": torch.ones_like(context),
                "retrieved_doc_embeds": self.embeds[ids], "doc_ids": ids}


def question_width(config):
    """The width of the question encoder's output (DPR: its projection when
    it has one, else its hidden size)."""
    qc = _sub(config, "question_encoder")
    proj = _get(qc, "projection_dim", default=0)
    return int(proj) if isinstance(proj, int) and proj > 0 else int(_get(qc, "hidden_size", default=768))


def _rag_inputs(r):
    """The question in the question encoder's vocabulary, the answer so far
    in the generator's, and the synthetic index set as the model's
    retriever (each context as long as the question)."""
    qv = _get(_sub(r.config, "question_encoder"), "vocab_size", default=30522)
    gv = _get(_sub(r.config, "generator"), "vocab_size", default=50265)
    r.inputs["input_ids"] = r.randint(qv, r.batch, r.seq)
    r.inputs["attention_mask"] = r.ones(r.batch, r.seq)
    r.inputs["decoder_input_ids"] = r.randint(gv, r.batch, r.seq, low=FIRST_WORD_ID)
    r.model.retriever = SyntheticIndex(r.torch, INDEX_DOCS, question_width(r.config), r.seq, gv)


# Named so that every result says its retriever was the synthetic index
# (outputs.recipe).
RECIPES = {
    "rag": Recipe(provides=("input_ids", "attention_mask", "decoder_input_ids"), inputs=_rag_inputs,
                  name="rag-synthetic-index"),
}
