"""A tiny Bottle shop: /ping for the pipeline's checks, /items for people."""
import bottle

app = bottle.Bottle()
ITEMS = {"1": "kettle", "2": "teapot"}


@app.get("/ping")
def ping():
    return {"pong": True}


@app.get("/items/<item_id>")
def item(item_id):
    if item_id not in ITEMS:
        bottle.abort(404, "no such item")
    return {"id": item_id, "name": ITEMS[item_id]}
