"""Write mode (Redis broker): following upstream's epoch of each channel.

Offsets and epochs come from Redis. When Redis starts a new epoch, the
stored stream either continues (offsets above the stored top: the older
publications stay readable) or restarts (offsets at or below it: the old
stream is dropped, as it cannot share the unique (channel, offset) index).
Late writes of a retired epoch (a claimer persisting an entry after the
switch) are skipped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from channels.history_mongo_conn import Collection, MongoConnection

log = logging.getLogger("channels.history_mongo")

EPOCH_CACHE = 4096  # channels whose epoch is remembered (bounded LRU)
RETIRED_EPOCHS = 16  # previous epochs a stream remembers, to skip their late writes
DELETE_CHUNK = 1000  # _ids per delete_many when a restart drops a stream


class EpochFollower:
    """Remembers each channel's current epoch; switches the stored stream on a change."""

    def __init__(self, conn: MongoConnection) -> None:
        self._conn = conn
        self._epochs: OrderedDict[str, str] = OrderedDict()

    async def follow(self, channel: str, epoch: str, first: int) -> bool:
        """Track upstream's epoch; False when ``epoch`` is a retired one (skip the write).

        ``first`` is the lowest offset about to be written in ``epoch``.
        """
        if self._epochs.get(channel) == epoch:
            self._epochs.move_to_end(channel)
            return True
        await self._conn.ensure_indexes()
        pubs, meta = self._conn.collections()
        with self._conn.backend("switch epoch"):
            doc = await meta.find_one({"_id": channel}, projection={"epoch": 1, "top": 1, "retired": 1})
            if doc is not None and doc.get("epoch") != epoch:
                if epoch in doc.get("retired", []):
                    log.warning("history of %s: skipping writes of retired epoch %s", channel, epoch)
                    return False
                update: dict[str, Any] = {
                    "$set": {"epoch": epoch},
                    "$push": {"retired": {"$each": [doc.get("epoch")], "$slice": -RETIRED_EPOCHS}},
                }
                if first <= int(doc.get("top", 0)):
                    log.warning("history of %s: epoch %s restarts offsets; old stream dropped", channel, epoch)
                    await drop_other_epochs(pubs, channel, epoch)
                    update["$set"]["top"] = 0
                else:
                    log.info("history of %s: epoch %s -> %s", channel, doc.get("epoch"), epoch)
                # Compare-and-set on the epoch: rare (once per switch), and on
                # the small streams collection.
                await meta.update_one({"_id": channel, "epoch": doc.get("epoch")}, update)
        self._epochs[channel] = epoch
        if len(self._epochs) > EPOCH_CACHE:
            self._epochs.popitem(last=False)
        return True


async def drop_other_epochs(pubs: Collection, channel: str, epoch: str) -> None:
    """Delete the channel's publications of other epochs, by _id.

    ``{channel, epoch: {$ne: epoch}}`` is no index prefix (a collection scan
    on SecantusDB, once per channel after Redis lost its data); the channel's
    documents are found on the (channel, offset) index and deleted by key.
    """
    stale = [d["_id"] async for d in pubs.find({"channel": channel}, projection={"epoch": 1})
             if d.get("epoch") != epoch]
    for i in range(0, len(stale), DELETE_CHUNK):
        await pubs.delete_many({"_id": {"$in": stale[i : i + DELETE_CHUNK]}})
