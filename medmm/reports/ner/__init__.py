"""NER training and evaluation on BIO/CoNLL corpora: spaCy pipelines with scispaCy's tokenizer.

``read_conll`` / ``read_corpus_dir`` read BC5CDR- or NCBI-disease-style ``token<TAB>tag`` files,
``train_ner`` trains and saves a pipeline that ``spacy.load(path)`` loads, ``evaluate_ner`` scores any
spaCy NER pipeline by exact span match on the gold tokenization. spaCy is imported lazily.

>>> from medmm.reports.ner import score_spans
>>> score_spans([[(0, 1, "Chemical")]], [[(0, 1, "Chemical")]])["micro"]["f1"]
1.0
"""

from medmm.reports.ner.corpus import CorpusFormatError, NerDoc, corpus_stats, read_conll, read_corpus_dir
from medmm.reports.ner.evaluate import evaluate_docs, evaluate_ner, load_model
from medmm.reports.ner.metrics import score_spans
from medmm.reports.ner.pipeline import build_pipeline, uses_scispacy_tokenizer
from medmm.reports.ner.pubtator import PubtatorDoc, evaluate_pubtator, read_pubtator
from medmm.reports.ner.train import NerTrainResult, train_ner

__all__ = [
    "CorpusFormatError",
    "NerDoc",
    "NerTrainResult",
    "PubtatorDoc",
    "build_pipeline",
    "corpus_stats",
    "evaluate_docs",
    "evaluate_ner",
    "evaluate_pubtator",
    "load_model",
    "read_conll",
    "read_corpus_dir",
    "read_pubtator",
    "score_spans",
    "train_ner",
    "uses_scispacy_tokenizer",
]
