"""Routes: /status for the pipeline's checks, /notes for people."""
import falcon
import falcon.asgi


class Status:
    async def on_get(self, req, resp):
        resp.media = {"ok": True}


class Notes:
    def __init__(self):
        self.notes = []

    async def on_get(self, req, resp):
        resp.media = {"notes": self.notes}

    async def on_post(self, req, resp):
        note = await req.get_media()
        self.notes.append(note)
        resp.status = falcon.HTTP_201
        resp.media = note


app = falcon.asgi.App()
app.add_route("/status", Status())
app.add_route("/notes", Notes())
