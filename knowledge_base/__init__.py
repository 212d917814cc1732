"""Knowledge base: articles, chunking, encoders, FAISS index snapshots, search and decisions.

A library with no web or Rasa imports; used by the action server (search) and the gateway
(editing, indexing).
"""
from .articles import Article, ImportResult, load_jsonl, load_markdown_folder, load_source
from .decision import ANSWER, CLARIFY, HANDOFF, DecisionPolicy
from .search import Hit, SearchResult, Searcher

__all__ = ["Article", "ImportResult", "load_jsonl", "load_markdown_folder", "load_source", "ANSWER",
           "CLARIFY", "HANDOFF", "DecisionPolicy", "Hit", "SearchResult", "Searcher"]
