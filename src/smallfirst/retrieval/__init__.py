"""Knowledge bases: give small models the documents they were never trained on.

`KnowledgeBase` stores chunked, embedded documents (SQLite + faiss) and finds the passages
for a query; `answer_with_kb` answers from them with numbered citations.
"""

from smallfirst.retrieval.answer import (
    NOT_FOUND,
    GroundedAnswer,
    Retriever,
    answer_with_kb,
    build_grounded_messages,
    parse_citations,
)
from smallfirst.retrieval.chunking import chunk_text
from smallfirst.retrieval.kb import (
    AddReport,
    Chunk,
    KnowledgeBase,
    KnowledgeBaseInfo,
    delete_knowledge_base,
    list_knowledge_bases,
)

__all__ = [
    "NOT_FOUND",
    "AddReport",
    "Chunk",
    "GroundedAnswer",
    "KnowledgeBase",
    "KnowledgeBaseInfo",
    "Retriever",
    "answer_with_kb",
    "build_grounded_messages",
    "chunk_text",
    "delete_knowledge_base",
    "list_knowledge_bases",
    "parse_citations",
]
