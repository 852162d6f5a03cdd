"""A named knowledge base: documents in, relevant chunks out.

Lives in `<state dir>/kb/NAME/` (a SQLite file with the chunks and their vectors, plus the
faiss index cache). Adding is incremental: a file whose bytes did not change is skipped by
its hash, a changed file has its chunks replaced, and `remove` takes documents out. The
chunk size and overlap are fixed when the base is created, so every chunk in it is alike.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from smallfirst.config import state_dir
from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import InvalidRequestError, NotFoundError
from smallfirst.retrieval.chunking import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_OVERLAP,
    check_settings,
    chunk_text,
)
from smallfirst.retrieval.index import VectorIndex
from smallfirst.retrieval.loaders import file_hash, find_files, read_document
from smallfirst.retrieval.store import ChunkStore, NewChunk

log = logging.getLogger("smallfirst.retrieval")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DB_FILE = "kb.sqlite"
SearchMode = Literal["hybrid", "dense", "keyword"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "keyword")
RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009): damps the weight of the top ranks."""
MIN_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrieved passage: what a grounded prompt quotes and cites."""

    text: str
    source: str
    score: float
    """Cosine similarity to the query, -1..1."""
    id: int = 0
    ordinal: int = 0
    """Position of the chunk within its document."""


@dataclass(slots=True)
class AddReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(file, why) for files that could not be read, e.g. a broken PDF."""
    chunks: int = 0
    """Chunks written by this call."""


@dataclass(frozen=True, slots=True)
class KnowledgeBaseInfo:
    name: str
    documents: int
    chunks: int
    chunk_chars: int
    overlap: int
    embedder: str


def kb_root() -> Path:
    return state_dir() / "kb"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidRequestError(
            f"invalid knowledge base name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)",
            param="name",
        )
    return name


def list_knowledge_bases() -> list[KnowledgeBaseInfo]:
    root = kb_root()
    if not root.exists():
        return []
    infos = []
    for folder in sorted(p for p in root.iterdir() if (p / DB_FILE).exists()):
        with KnowledgeBase.open(folder.name) as kb:
            infos.append(kb.info())
    return infos


def delete_knowledge_base(name: str) -> None:
    folder = kb_root() / check_name(name)
    if not (folder / DB_FILE).exists():
        raise _unknown(name)
    shutil.rmtree(folder)


def _unknown(name: str) -> NotFoundError:
    known = sorted(p.parent.name for p in kb_root().glob(f"*/{DB_FILE}"))
    names = ", ".join(known) if known else "none yet"
    return NotFoundError(
        f"knowledge base {name!r} does not exist (known: {names}); "
        f"create it with: smallfirst kb add {name} DOCS_DIR",
        param="name",
    )


class KnowledgeBase:
    """Open with `KnowledgeBase.open(name)` or `.create(name)`; close (or use `with`)."""

    def __init__(self, name: str, folder: Path, store: ChunkStore) -> None:
        self.name = name
        self.folder = folder
        self.store = store
        meta = store.get_meta()
        self.chunk_chars = int(meta["chunk_chars"])
        self.overlap = int(meta["overlap"])
        self.embedder: Embedder = get_embedder(meta["embedder"])
        self._index: VectorIndex | None = None
        self._lock = threading.RLock()
        """One writer or reader at a time: the SQLite connection and faiss index are shared."""

    @classmethod
    def open(cls, name: str) -> KnowledgeBase:
        folder = kb_root() / check_name(name)
        if not (folder / DB_FILE).exists():
            raise _unknown(name)
        return cls(name, folder, ChunkStore(folder / DB_FILE))

    @classmethod
    def create(
        cls,
        name: str,
        chunk_chars: int | None = None,
        overlap: int | None = None,
        embedder: str = "minilm",
    ) -> KnowledgeBase:
        """Open `name`, creating it when missing; settings given must match an existing one."""
        folder = kb_root() / check_name(name)
        if (folder / DB_FILE).exists():
            kb = cls.open(name)
            kb._check_same_settings(chunk_chars, overlap)
            return kb
        chunk_chars = DEFAULT_CHUNK_CHARS if chunk_chars is None else chunk_chars
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        check_settings(chunk_chars, overlap)
        get_embedder(embedder)
        folder.mkdir(parents=True, exist_ok=True)
        store = ChunkStore(folder / DB_FILE)
        store.set_meta(
            {"chunk_chars": str(chunk_chars), "overlap": str(overlap), "embedder": embedder}
        )
        return cls(name, folder, store)

    def _check_same_settings(self, chunk_chars: int | None, overlap: int | None) -> None:
        for key, given, have in (
            ("chunk size", chunk_chars, self.chunk_chars),
            ("overlap", overlap, self.overlap),
        ):
            if given is not None and given != have:
                self.close()
                raise InvalidRequestError(
                    f"knowledge base {self.name!r} was built with {key} {have}, not {given}; "
                    "remove it with `smallfirst kb drop` to rebuild with other settings"
                )

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @property
    def index(self) -> VectorIndex:
        """The vector index as of the store's last write (another process may have written)."""
        if self._index is None or self._index.generation != self.store.generation:
            self._index = VectorIndex.load(self.folder, self.embedder.dim, self.store)
        return self._index

    def info(self) -> KnowledgeBaseInfo:
        with self._lock:
            documents, chunks = self.store.counts()
        return KnowledgeBaseInfo(
            self.name, documents, chunks, self.chunk_chars, self.overlap, self.embedder.name
        )

    def sources(self) -> list[str]:
        with self._lock:
            return self.store.sources()

    # -- writing ----------------------------------------------------------------------------
    def add(self, paths: list[str | Path]) -> AddReport:
        """Add files and folders; unchanged files are skipped, changed ones replaced."""
        report = AddReport()
        files, unsupported = find_files([Path(p) for p in paths])
        for file in unsupported:
            log.warning("skipping %s: unsupported file type %r", file, file.suffix or "(none)")
            report.unsupported.append(str(file))
        with self._lock:
            for file in files:
                self._add_file(file, report)
            self._save_index()
        return report

    def _add_file(self, file: Path, report: AddReport) -> None:
        source = str(file)
        old_hash = self.store.document_hash(source)
        if old_hash is not None and old_hash == file_hash(file):
            report.unchanged.append(source)
            return
        try:
            document = read_document(file)
        except InvalidRequestError as exc:
            log.warning("skipping %s: %s", file, exc.message)
            report.failed.append((source, exc.message))
            return
        written = self.add_text(source, document.text, document.sha256, save=False)
        if written == 0:
            log.warning("skipping %s: no text found in it", file)
            report.empty.append(source)
            return
        (report.updated if old_hash is not None else report.added).append(source)
        report.chunks += written

    def add_text(self, source: str, text: str, sha256: str = "", save: bool = True) -> int:
        """Store `text` as document `source`, replacing any earlier version; chunks written.

        Text with nothing to chunk stores nothing (and removes an older version)."""
        spans = chunk_text(text, self.chunk_chars, self.overlap)
        if not spans:
            if self.store.document_hash(source) is not None:
                self.remove([source])
            return 0
        vectors = self.embedder.encode([s.text for s in spans])
        new = [NewChunk(s.start, s.end, s.text, v) for s, v in zip(spans, vectors, strict=True)]
        with self._lock:
            index = self.index  # loaded before the write, so it does not hold the new rows yet
            removed, ids = self.store.replace_document(source, sha256, len(text), new)
            index.remove(removed)
            index.add(ids, vectors)
            index.generation = self.store.generation
            if save:
                self._save_index()
        return len(ids)

    def remove(self, sources: list[str | Path]) -> list[str]:
        """Take documents out: exact sources, or every document under a given folder."""
        with self._lock:
            known = self.store.sources()
            wanted: set[str] = set()
            for given in sources:
                for key in {str(given), str(Path(given).resolve())}:
                    folder = key.rstrip("/") + "/"
                    wanted.update(s for s in known if s == key or s.startswith(folder))
            if wanted:
                index = self.index
                index.remove(self.store.remove_documents(sorted(wanted)))
                index.generation = self.store.generation
                self._save_index()
        return sorted(wanted)

    def _save_index(self) -> None:
        if self._index is not None:
            self._index.save(self.store.generation)

    # -- reading ----------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, mode: SearchMode = "hybrid") -> list[Chunk]:
        """The `k` chunks most relevant to `query`, best first.

        `dense` ranks by MiniLM cosine similarity, `keyword` by BM25 over the words, `hybrid`
        fuses both rankings (reciprocal rank fusion): meaning and exact terms each rescue
        what the other misses. `Chunk.score` is always the cosine similarity."""
        if not query or not query.strip():
            raise InvalidRequestError("the query is empty", param="query")
        if k < 1:
            raise InvalidRequestError(f"k must be at least 1, not {k}", param="k")
        if mode not in SEARCH_MODES:
            raise InvalidRequestError(
                f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}",
                param="mode",
            )
        vector = self.embedder.encode([query])[0]
        pool = k if mode == "dense" else max(4 * k, MIN_CANDIDATES)
        with self._lock:
            index = self.index
            dense = [] if mode == "keyword" else [i for i, _ in index.search(vector, pool)]
            keyword = [] if mode == "dense" else self.store.keyword_search(query, pool)
            ranked = fuse_rankings([dense, keyword])[:k]
            scores = index.similarity(vector, ranked)
            stored = self.store.chunks(ranked)
        return [
            Chunk(c.text, c.source, score, c.id, c.ordinal)
            for chunk_id, score in zip(ranked, scores, strict=True)
            if (c := stored.get(chunk_id)) is not None
        ]


def fuse_rankings(rankings: list[list[int]]) -> list[int]:
    """Reciprocal rank fusion: ids ordered by the sum of 1 / (RRF_K + rank) over rankings."""
    totals: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            totals[item] = totals.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(totals, key=lambda item: -totals[item])
