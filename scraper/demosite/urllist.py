"""The FaceScrub-style URL lists of the demo site (name, image_id, face_id, url, bbox, sha256; tab-separated).

The generator writes them to ``lists/`` with ``__HOST__`` for the server's address (the server
fills it in when it serves ``/lists/...``); ``anfe site serve`` writes working copies with the
real address to the site's top folder, the files a user finds first.
"""

from __future__ import annotations

from PIL import Image

from anfe.faces.checks import EXACT_DUPLICATE

from .pages import HOST, SiteWriter
from .people import Person, Picker
from .traps import DISALLOWED, Expect

PREFIX = "/facescrub"
#: Where the generator writes the lists (with ``__HOST__``), relative to the site folder.
LISTS_DIR = "lists"
LIST_FILES = ("facescrub_actors.txt", "facescrub_actresses.txt")


def build_urllist(site: SiteWriter, actors: list[Person], actresses: list[Person], picker: Picker) -> Expect:
    """Two lists (actors with a header, actresses without) and, in the actors' list, the traps:
    a wrong sha256, a 404, a bad line, a robots-forbidden URL, the same bytes under another URL."""
    expect = Expect()
    header = "name\timage_id\tface_id\turl\tbbox\tsha256\n"
    face = 0
    files = {"facescrub_actors.txt": [header], "facescrub_actresses.txt": []}
    for file_name, people in (("facescrub_actors.txt", actors), ("facescrub_actresses.txt", actresses)):
        for person in people:
            expect.people[person.gender].append(person.name)
            for index, photo in enumerate(person.photos):
                pid = site.new_id()
                url = f"{PREFIX}/images/{pid}.jpg"
                site.copy(url, photo)
                digest = picker.hashes[photo]
                expect.keep(person.gender, digest)
                width, height = Image.open(photo).size
                bbox = f"{width * 3 // 10},{height // 4},{width * 7 // 10},{height * 3 // 4}"
                face += 1
                sha = "" if index == 1 else digest
                files[file_name].append(f"{person.name}\t{pid}\t{face}\thttp://{HOST}{url}\t{bbox}\t{sha}\n")
    lines = files["facescrub_actors.txt"]
    first = actors[0]
    spare = picker.spare("male")
    pid = site.new_id()
    site.copy(f"{PREFIX}/images/{pid}.jpg", spare)
    lines.append(f"{first.name}\t{pid}\t{face + 1}\thttp://{HOST}{PREFIX}/images/{pid}.jpg\t10,10,200,200\t{'0' * 64}\n")
    expect.drop("hash-mismatch")
    lines.append(f"{first.name}\t{pid + 1}\t{face + 2}\thttp://{HOST}{PREFIX}/images/{pid}-gone.jpg\t10,10,200,200\t\n")
    expect.drop("http-404")
    lines.append(f"{first.name}\tonly-two-columns\n")
    expect.drop("bad-row")
    private = f"{DISALLOWED}facescrub/{pid}.jpg"
    site.copy(private, picker.spare("male"))
    lines.append(f"{first.name}\t{pid + 2}\t{face + 3}\thttp://{HOST}{private}\t10,10,200,200\t\n")
    expect.drop("robots-txt")
    expect.robots_forbidden += 1
    copy = f"{PREFIX}/images/{pid}-copy.jpg"
    site.copy(copy, first.photos[0])
    lines.append(f"{first.name}\t{pid + 3}\t{face + 4}\thttp://{HOST}{copy}\t10,10,200,200\t\n")
    expect.drop(EXACT_DUPLICATE.name)
    for file_name, content in files.items():
        site.write(f"/{LISTS_DIR}/{file_name}", "".join(content))
    expect.extra["runs"] = [{"file": "facescrub_actors.txt", "gender": "male"},
                            {"file": "facescrub_actresses.txt", "gender": "female"}]
    return expect
