"""Drives the Rust test catalog with the real deriva-py client (deriva==1.7.12).

Usage: python fidelity.py HOST:PORT TOKEN WORKDIR. Prints one JSON object of observations;
any protocol mismatch raises (non-zero exit).
"""
import hashlib
import json
import os
import sys

from deriva.core import ErmrestCatalog, HatracStore

host, token, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
cred = {"bearer-token": token}
out = {}

catalog = ErmrestCatalog("http", host, "1", credentials=cred)
model = catalog.getCatalogModel()
feature = model.schemas["demo"].tables["Execution_Image_Glaucoma"]
out["feature_keys"] = sorted(sorted(k.unique_columns[i].name for i in range(len(k.unique_columns))) for k in feature.keys)
out["feature_fkeys"] = len(feature.foreign_keys)
out["schemas"] = sorted(model.schemas.keys())

pb = catalog.getPathBuilder()
image = pb.schemas["demo"].tables["Image"]
rows = list(image.filter(image.RID == "1-I002").entities())
out["image_filename"] = rows[0]["Filename"]
out["image_length"] = rows[0]["Length"]
out["resolved"] = catalog.resolve_rid("1-I001").tableName if hasattr(catalog.resolve_rid("1-I001"), "tableName") else str(catalog.resolve_rid("1-I001").table.name)

glaucoma = pb.schemas["demo"].tables["Execution_Image_Glaucoma"]
new = [{"Execution": "1-E003", "Image": "1-I004", "Feature_Name": "Glaucoma", "Glaucoma": "Mild"}]
first = list(glaucoma.insert(new, on_conflict_skip=True))
again = list(glaucoma.insert(new, on_conflict_skip=True))
out["insert_first"] = len(first)
out["insert_again"] = len(again)
out["inserted_rid_shape"] = first[0]["RID"].count("-") >= 1
sorted_terms = [r["Name"] for r in pb.schemas["demo"].tables["Glaucoma"].entities().sort(pb.schemas["demo"].tables["Glaucoma"].RID)]
out["terms"] = sorted_terms

store = HatracStore("http", host, credentials=cred)
data = os.urandom(3000)
path = os.path.join(workdir, "blob.bin")
with open(path, "wb") as f:
    f.write(data)
loc = store.put_obj("/hatrac/Fidelity/blob.bin", path)
out["put_obj_location"] = loc
got = store.get_obj(loc)
out["get_obj_equal"] = got.content == data
chunked_loc = store.put_loc("/hatrac/Fidelity/chunked.bin", path, chunked=True, chunk_size=1024)
got2 = store.get_obj(chunked_loc)
out["chunked_equal"] = got2.content == data
out["content_equals"] = bool(store.content_equals("/hatrac/Fidelity/chunked.bin", filename=path))
print(json.dumps(out))
