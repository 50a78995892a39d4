"""Label noise about people, planted on purpose in the demo site (with a record of what was planted),
so that ``anfe clean`` and the review page can be checked against known answers:

- wrong-person photos: a photo of another person of the same gender added to a gallery (as
  co-star and event photos end up in celebrity galleries);
- flipped people: a person listed under the other gender (a list of "actors" that holds an
  actress), every photo of them with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import DemoSiteError
from .people import Person, Picker


def _other(gender: str) -> str:
    return "male" if gender == "female" else "female"


def plant(people: Sequence[Person], picker: Picker, wrong_person: int = 0, flip_people: int = 0) -> dict[str, Any]:
    """Plant into ``people`` (before their pages are written) and return the manifest entry:
    ``wrong_person`` galleries get one photo of a person not on the site (same gender), and
    ``flip_people`` other people are listed under the other gender. Chosen with the picker's
    seeded generator; only people whose gender the site states."""
    gendered = [p for p in people if p.stated]
    if wrong_person + flip_people > len(gendered):
        raise DemoSiteError(f"cannot plant {wrong_person} wrong-person photos and flip {flip_people} people "
                            f"among {len(gendered)} people: use more --people")
    chosen = picker.rng.sample(gendered, wrong_person + flip_people)
    planted: dict[str, Any] = {"wrong_person": [], "flipped_people": []}
    for person in chosen[:wrong_person]:
        donor = picker.person(person.gender, 1)
        photo = donor.photos[0]
        person.photos.append(photo)
        planted["wrong_person"].append({"person": person.name, "gender": person.gender, "true_person": donor.name,
                                        "sha256": picker.hashes[photo], "source": str(photo)})
    for person in chosen[wrong_person:]:
        planted["flipped_people"].append({"person": person.name, "true_gender": person.gender,
                                          "listed_as": _other(person.gender),
                                          "sha256": [picker.hashes[p] for p in person.photos]})
        person.gender = _other(person.gender)
    return planted


__all__ = ["plant"]
