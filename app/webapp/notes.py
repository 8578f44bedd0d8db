"""An in-memory, thread-safe store of notes (one per worker process)."""
import threading
from datetime import datetime, timezone

MAX_TEXT = 500


class NoteStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._notes = {}
        self._next_id = 1

    def add(self, text):
        with self._lock:
            note = {
                "id": self._next_id,
                "text": text,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            self._notes[note["id"]] = note
            self._next_id += 1
            return dict(note)

    def get(self, note_id):
        with self._lock:
            note = self._notes.get(note_id)
            return dict(note) if note else None

    def all(self):
        with self._lock:
            return [dict(n) for n in self._notes.values()]
