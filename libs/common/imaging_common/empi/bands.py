"""Three bands: link automatically, send to the review list, or a new person.

The match weight decides first (thresholds on the Fellegi–Sunter weight); then safety rules
can only lower a band, never raise it. They encode what no weight should override:

1. Two VALID numbers from the same national authority that differ mean two people. The
   MOD 11-2 check digit catches every single wrong digit and every swap of neighbours, so a
   typo cannot produce a second valid number. Twins have consecutive numbers: never merged.
2. The twin decision. Parents do not give twins names that sound the same: they call them by
   those names. Two names in characters that sound the same, tones included (张子涵 / 张子寒:
   zǐ hán / zǐ hán), are one name typed through a pinyin input method: with the same birth date,
   the phone or the address agreeing and no identifier that disagrees, they may be linked
   automatically. A name that differs in sound, by a syllable or only by a tone (张子涵 / 张子汉:
   hán / hàn), or agrees only roughly, is linked automatically only when an ID number agrees
   (exactly or with one typo): twins are often named alike (张子涵/张子轩). Twins with different
   valid ID numbers are never linked (rule 1).
3. Name + birth date + sex are not enough on their own for a common name: namesakes born the
   same day exist in every city (a 王伟 has one with a chance of a few percent). An automatic
   link also needs an ID number, a hospital card/HIS id, the phone number or the address to
   agree, unless the name (in characters, or its pinyin for a pinyin-only record) is rare: at
   least RARE_NAME_BITS of frequency weight above the typical coinciding name (16 times rarer),
   where a same-day namesake is a one-in-thousands event. Between Latin-script names an address that
   agrees only in part (the street, not the suburb) corroborates when the postcode agrees too; not
   between Chinese addresses, whose city, district and road alone make half of one.
4. Different sex, or a different name altogether, goes to a person, not to the machine. A record
   without a name is linked only by an ID or medical-insurance number that agrees exactly and the
   same birth date.
5. Except for names in Latin script on both sides (foreign patients, legacy files of other systems):
   their typos, swapped, missing and replaced parts are linked automatically when an ID number or a
   medical-insurance (social security) number agrees, and the weight is over the link threshold; a
   name one typo apart, or one whose other part was replaced (SMITH JONATHAN / SMITH CALEB), also when
   that number has one typo (a wrong digit or a swap; not the last digit alone: numbers issued one
   after the other are twins' numbers) and the birth date agrees (or is missing on a side while the
   address agrees). The twin guard
   (rule 2) is for Chinese names: a Latin-script name one typo apart that cannot be read as pinyin
   (SMITH / SMYTH) is a typo, weighed like any other agreement; ZIHAN / ZIHANG stay the guard's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imaging_common.empi import comparators as c
from imaging_common.empi.names import reads_as_pinyin
from imaging_common.empi.record import MatchRecord


class Band(StrEnum):
    LINK = "link"
    REVIEW = "review"
    NEW = "new"


@dataclass(frozen=True)
class Thresholds:
    # weight >= link: same person. 10 bits = a likelihood ratio of 1024:1, i.e. a posterior above
    # 0.999 at the ~50 % prior EM finds among blocked pairs; the rules below guard the known traps.
    link: float = 10.0
    review: float = 4.0  # review <= weight < link: a clerk decides


RARE_NAME_BITS = 4.0


def band_for(weight: float, gamma: tuple[int, ...], a: MatchRecord, b: MatchRecord,
             thresholds: Thresholds, name_bits: float = 0.0) -> tuple[Band, str | None]:
    """The band and, when a rule lowered it, the rule's reason. `name_bits`: the frequency weight of
    an exact or pinyin name agreement, already in `weight` (0 when frequencies are unknown)."""
    band = Band.LINK if weight >= thresholds.link else Band.REVIEW if weight >= thresholds.review else Band.NEW
    if band is Band.NEW:
        return band, None
    if c.both_valid_national_ids_differ(a, b) and gamma[3] != c.ID_EXACT:
        return Band.NEW, "different valid ID numbers"
    if band is Band.REVIEW:
        return band, None
    name, dob, sex, nid, local, phone, address = gamma[:7]
    id_agrees = nid in (c.ID_EXACT, c.ID_NEAR)
    if latin_script(a, b) and sex != 1 and (
            (name in (c.NAME_SIMILAR, c.NAME_DIFFERENT) and (id_agrees or c.personal_number_agrees(a, b)))
            or ((dob == c.DOB_EXACT or (dob == c.MISSING and address == 0)) and c.personal_number_near(a, b) and (
                name == c.NAME_SIMILAR or (name == c.NAME_DIFFERENT and c.share_a_name(a, b))))):
        # Rule 5: Latin-script names from other systems carry typos, swaps, missing and replaced parts;
        # a number issued to one person that agrees decides, as for a homophone (weight permitting); one
        # with a typo, when the name is one typo apart and the birth date agrees.
        return band, None
    if name in (c.NAME_HOMOPHONE, c.NAME_SIMILAR) and not id_agrees and not (
            name == c.NAME_SIMILAR and foreign_names(a, b)):
        if not same_sound(a, b):
            return Band.REVIEW, "names sound different (a syllable or a tone) and no ID number agrees: twins?"
        # The birth date agrees, or has one typo while phone and address both agree (twins share the day:
        # a date typed wrong makes no twin of a name that sounds the same).
        dob_agrees = dob == c.DOB_EXACT or (dob == c.DOB_NEAR and phone == 0 and address == 0)
        no_number_differs = nid == c.MISSING and local in (c.MISSING, c.LOCAL_SAME)
        if not (dob_agrees and (phone == 0 or address == 0) and no_number_differs):
            return Band.REVIEW, "names sound the same, but birth date and phone or address do not all agree"
    if name == c.MISSING and dob == c.DOB_EXACT and sex != 1 and (
            nid == c.ID_EXACT or c.personal_number_agrees(a, b)):
        return band, None  # a record without a name: the number issued to one person and the birth date decide
    if name == c.NAME_DIFFERENT and dob == c.DOB_EXACT and c.share_a_name(a, b):
        # SMITH JONATHAN / SMITH CALEB born the same day, no number that agrees: a given name replaced in a
        # legacy file, or twins. Only a clerk can tell.
        return Band.REVIEW, "one name part differs, the other and the birth date agree, no number agrees: twins?"
    if name == c.NAME_DIFFERENT or name == c.MISSING:
        return Band.REVIEW, "names differ"
    if sex == 1:
        return Band.REVIEW, "sex differs"
    corroborated = (id_agrees or local == c.LOCAL_SAME or phone in (0, 1) or address == 0
                    or (address == 1 and c.postcode_agrees(a, b) and latin_script(a, b)))
    if not corroborated and not (name in (c.NAME_EXACT, c.NAME_PINYIN) and name_bits >= RARE_NAME_BITS):
        return Band.REVIEW, "only name and birth date agree"
    return band, None


def same_sound(a: MatchRecord, b: MatchRecord) -> bool:
    """Two names in characters that are read the same, tones included (张子涵 / 张子寒)."""
    return bool(a.name and b.name and a.name.han and b.name.han and a.name.tones == b.name.tones)


def latin_script(a: MatchRecord, b: MatchRecord) -> bool:
    return bool(a.name and b.name and not a.name.han and not b.name.han)


def foreign_names(a: MatchRecord, b: MatchRecord) -> bool:
    """Two Latin-script names, not both readable as pinyin: a letter wrong in SMITH is a typo, not a
    twin's other syllable (ZIHAN / ZIHANG are two names, twins' perhaps: the twin guard's)."""
    return latin_script(a, b) and not (reads_as_pinyin(a.name) and reads_as_pinyin(b.name))  # type: ignore[arg-type]
