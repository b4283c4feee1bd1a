"""Synthetic Chinese identities with realistic duplicates, hard negatives and ground truth.

Used by the EMPI benchmark and tests, and to estimate the shipped default parameters
(imaging_common/empi/default_model.json); the EMPI CLI reads real files only. The
population has namesakes (family names drawn with their real frequencies: 王, 李 and 张 are
each about 7 % of the population), twins (same family name, birth date, address and phone;
consecutive ID numbers, often alike-sounding given names, never ones that sound the same, tones
included), same-name people born the same day,
and homophone namesakes. Every ID number agrees with the birth date and sex of its holder.

A person's duplicate records carry the errors front desks make, and where they make them. About
half of the re-registrations of a person who holds an ID card read it with a card reader: the ID
number, name (characters), birth date and sex are then exact. The others are typed: one wrong ID
digit or two swapped, a missing ID, a homophone picked from the input method, a pinyin-only entry
(foreign system), traditional characters, a birth-date typo or day/month swap. Any record may
carry a new phone (or one mistyped digit), an abbreviated or moved address, a missing sex. The
overall rate of each error is what it was before the card reader was modelled; the errors are
now concentrated on typed records, e.g. a homophone comes with a missing ID more often.

Namesakes born the same day follow the names' frequencies, as they do in a real catchment. A
hospital serves about `CATCHMENT` (2 million) people whose birth dates spread over the
generator's `BIRTH_DAYS` (~31,000 days, 85 years). Someone whose full name has frequency f
(family-name share x given-name share) shares name and birth date with, on average,
lambda = CATCHMENT * f / BIRTH_DAYS other people, so gets such a namesake with probability
1 - exp(-lambda): 2-3 % for 王伟 or 张敏, 0.1 % for 王伟强, a few in a million for a rare family
name with an uncommon two-character given name (汤炜婕). Homophone namesakes likewise, with f the
summed frequency of the names that differ by one homophone character (王伟 -> 王维/王玮/王炜).
Every such namesake is put in the data set, as if everyone in the catchment were a patient: the
worst case for the matcher. Given names are drawn with unequal frequencies (a handful of
characters such as 伟, 敏, 静, 丽, 强 are far more common than 炜 or 婕), so common full names
exist and carry the hard negatives; before this change every person had the same ~1.5 % chance
of a same-day namesake whatever their name, which made a rare name and a common one equally weak
evidence. Twins stay at 2 % of people.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from itertools import accumulate

from imaging_common.empi.identifiers import resident_check_char
from imaging_common.empi.names import latin_of, name_form, split_han_name
from opencc import OpenCC

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
    "潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦"
    "邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
) + ["欧阳", "司马"]
# Shares in percent of the 20 most common family names (2020 census, rounded), in SURNAMES order;
# the rest share what is left evenly. Common names make namesakes, as they do at a real desk.
_TOP_SHARES = [7.1, 7.0, 6.4, 5.4, 4.5, 3.1, 2.4, 2.3, 2.0, 1.9, 1.5, 1.5, 1.3, 1.3, 1.3, 1.1, 1.1, 1.1, 1.0, 0.9]
SURNAME_CUM_WEIGHTS = list(accumulate(_TOP_SHARES + [0.5] * (len(SURNAMES) - len(_TOP_SHARES))))
# Homophone groups (same toneless pinyin): the input method offers all of them.
HOMOPHONES = [
    "伟维玮炜", "静晶婧", "丽莉立力", "敏民", "明鸣铭", "华花", "杰洁婕", "涛韬", "芳方", "娟鹃", "军君均", "强蔷",
    "磊蕾", "洋阳", "勇永咏", "艳燕彦", "超潮", "霞侠", "平萍苹", "刚钢", "英颖莹", "玉宇雨语", "兰岚", "红宏鸿",
    "建健剑", "文雯", "辉慧惠", "鑫欣新馨", "浩昊皓", "轩萱宣", "涵晗寒", "怡宜仪毅", "子梓紫", "思斯", "佳嘉家",
    "俊骏", "博波", "琳林霖", "晨辰", "婷亭", "雪学", "梅玫", "峰锋丰", "斌彬", "秀绣", "龙隆", "凯恺", "睿瑞",
]
GIVEN = [ch for group in HOMOPHONES for ch in group] + list("国志海东光春成晓小云天宁安德金荣桂生秋")
# Given-name characters in three rough frequency tiers (relative weights): the very common ones of
# Chinese naming, then the usual ones (the first of each homophone group, the extras, and a few
# alternatives that are common in their own right), then the rarer homophone alternatives.
COMMON_GIVEN = "伟敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
USUAL_GIVEN = {group[0] for group in HOMOPHONES} | set("国志海东光春成晓小云天宁安德金荣生秋燕颖慧欣宇嘉林鸿健晶玉")
GIVEN_WEIGHTS = [5.0 if ch in COMMON_GIVEN else 2.0 if ch in USUAL_GIVEN else 1.0 for ch in GIVEN]
GIVEN_CUM_WEIGHTS = list(accumulate(GIVEN_WEIGHTS))
_GIVEN_SHARE = {ch: w / GIVEN_CUM_WEIGHTS[-1] for ch, w in zip(GIVEN, GIVEN_WEIGHTS, strict=True)}
_SURNAME_SHARE = {s: w / SURNAME_CUM_WEIGHTS[-1] for s, w in zip(
    SURNAMES, _TOP_SHARES + [0.5] * (len(SURNAMES) - len(_TOP_SHARES)), strict=True)}
SINGLE_GIVEN = 0.3  # share of one-character given names
CATCHMENT = 2_000_000  # people a hospital serves: the pool same-day namesakes come from
BIRTH_DAYS = 31000  # birth dates are spread over this many days (1935 onwards)
TWIN_RATE = 0.02
REGIONS = ["110101", "110105", "110108", "120101", "310101", "310104", "310115", "320102", "320106", "330102",
           "330106", "340102", "350102", "370102", "410102", "420102", "430102", "440103", "440106", "440304",
           "450102", "500103", "510104", "510107", "610102", "210102", "220102", "230102", "130102", "140105"]
CITIES = ["北京市朝阳区", "北京市海淀区", "上海市浦东新区", "上海市徐汇区", "广州市天河区",
          "深圳市南山区", "南京市鼓楼区", "杭州市西湖区", "成都市武侯区", "武汉市洪山区",
          "西安市雁塔区", "沈阳市和平区", "长沙市岳麓区", "重庆市渝中区"]
STREETS = ["建国路", "人民路", "解放路", "中山路", "和平街", "长江路", "黄河路", "新华街", "光明路", "胜利街", "文化路",
           "学院路", "科技路", "滨江路", "幸福里", "朝阳街", "东风路", "青年路", "北京路", "南京路"]

_S2T = OpenCC("s2t")
CARD_READ = 0.5  # share of an ID holder's re-registrations where the ID card is read by a card reader


@dataclass
class SyntheticRecord:
    record_id: str
    person_id: int
    name: str
    sex: str | None
    birth_date: date | None
    id_number: str | None
    phone: str | None
    address: str | None
    kind: str = "original"  # or the error(s) applied to make this duplicate
    tags: list[str] = field(default_factory=list)

    def row(self) -> dict[str, str]:
        """As a CSV row with Chinese-style columns, the batch CLI's default mapping."""
        return {"record_id": self.record_id, "name": self.name, "sex": self.sex or "",
                "birth_date": self.birth_date.isoformat() if self.birth_date else "",
                "id_number": self.id_number or "", "id_type": "resident-id" if self.id_number else "",
                "phone": self.phone or "", "address": self.address or ""}


def _resident_id(rng: random.Random, region: str, born: date, sex: str, seq: int | None = None) -> str:
    seq = seq if seq is not None else rng.randrange(0, 500) * 2 + (1 if sex == "M" else 0)
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + resident_check_char(first17)


def name_frequency(name: str) -> float:
    """Share of people with this full name under the generator's distribution (0 for other names)."""
    family, given = split_han_name(name)
    f = _SURNAME_SHARE.get(family, 0.0) * (SINGLE_GIVEN if len(given) == 1 else 1 - SINGLE_GIVEN if len(given) == 2
                                            else 0.0)
    for ch in given:
        f *= _GIVEN_SHARE.get(ch, 0.0)
    return f


def homophone_variants(name: str) -> list[str]:
    """Names that differ from `name` by one given-name character of the same sound."""
    family, given = split_han_name(name)
    out = []
    for i, ch in enumerate(given):
        for group in HOMOPHONES:
            if ch in group:
                out += [family + given[:i] + alt + given[i + 1:] for alt in group if alt != ch]
    return out


def same_day_namesake_rate(frequency: float) -> float:
    """P(at least one other person in the catchment has this name and this birth date): Poisson."""
    return 1 - math.exp(-CATCHMENT * frequency / BIRTH_DAYS)


def _tones(name: str) -> tuple[str, ...]:
    form = name_form(name)
    return form.tones if form is not None else ()


def _homophone(rng: random.Random, ch: str) -> str | None:
    for group in HOMOPHONES:
        if ch in group and len(group) > 1:
            return rng.choice([c for c in group if c != ch])
    return None


class Generator:
    def __init__(self, seed: int = 20241):
        self.rng = random.Random(seed)
        self._n = 0

    def _rid(self) -> str:
        self._n += 1
        return f"R{self._n:07d}"

    def _given(self) -> str:
        k = 1 if self.rng.random() < SINGLE_GIVEN else 2
        return "".join(self.rng.choices(GIVEN, cum_weights=GIVEN_CUM_WEIGHTS, k=k))

    def _phone(self) -> str:
        return "1" + self.rng.choice("3456789") + "".join(self.rng.choice("0123456789") for _ in range(9))

    def _address(self) -> str:
        r = self.rng
        street = f"{r.choice(STREETS)}{r.randint(1, 300)}号"
        return f"{r.choice(CITIES)}{street}{r.randint(1, 12)}单元{r.randint(1, 30)}0{r.randint(1, 6)}"

    def _person(self, pid: int) -> SyntheticRecord:
        r = self.rng
        sex = r.choice("MF")
        born = date(1935, 1, 1) + timedelta(days=r.randrange(0, 31000))
        id_number = _resident_id(r, r.choice(REGIONS), born, sex) if r.random() < 0.93 else None
        family = r.choices(SURNAMES, cum_weights=SURNAME_CUM_WEIGHTS)[0]
        return SyntheticRecord(self._rid(), pid, family + self._given(), sex, born, id_number,
                               self._phone() if r.random() < 0.9 else None,
                               self._address() if r.random() < 0.8 else None)

    def _born_with(self, base: SyntheticRecord, pid: int, name: str, kind: str) -> SyntheticRecord:
        """Another person (own ID region and sequence, phone, address) with `base`'s birth date and sex."""
        other = self._person(pid)
        born, sex = base.birth_date or date(2000, 1, 1), base.sex or "M"
        # The ID number embeds the birth date and sex: it must be this person's, not the discarded draw's.
        id_number = _resident_id(self.rng, other.id_number[:6], born, sex) if other.id_number else None
        return replace(other, name=name, birth_date=born, sex=sex, id_number=id_number, kind=kind, tags=["namesake"])

    def population(self, people: int, *, duplicate_rate: float = 0.3) -> list[SyntheticRecord]:
        """Records of `people` persons (originals + duplicates), shuffled."""
        r = self.rng
        out: list[SyntheticRecord] = []
        pid = 0
        while pid < people:
            base = self._person(pid)
            group = [base]
            if r.random() < TWIN_RATE and pid + 1 < people:  # twins
                pid += 1
                twin_sex = base.sex if r.random() < 0.6 else ("F" if base.sex == "M" else "M")
                given = base.name[1:]
                # Parents never give twins names that sound the same, tones included (they call them by
                # those names); alike-sounding ones are common (张子涵 / 张子轩, 张子涵 / 张子汉).
                while _tones(base.name[0] + given) == _tones(base.name):
                    given = self._given()
                    if r.random() < 0.5 and len(base.name) >= 3:  # 张子涵 / 张子轩
                        given = base.name[1] + r.choices(GIVEN, cum_weights=GIVEN_CUM_WEIGHTS)[0]
                twin_id = None
                if base.id_number:
                    seq = int(base.id_number[14:17]) + (1 if twin_sex != base.sex else 2)
                    twin_id = _resident_id(r, base.id_number[:6], base.birth_date or date(2000, 1, 1), twin_sex or "M",
                                           seq % 1000)
                group.append(replace(base, record_id=self._rid(), person_id=pid, name=base.name[0] + given,
                                     sex=twin_sex, id_number=twin_id, kind="twin", tags=["twin"]))
            elif pid + 1 < people:
                # Namesakes born the same day, as often as the name's frequency makes them (docstring).
                variants = homophone_variants(base.name)
                freqs = [name_frequency(v) for v in variants]
                p_same = same_day_namesake_rate(name_frequency(base.name))
                roll = r.random()
                if roll < p_same:
                    pid += 1
                    group.append(self._born_with(base, pid, base.name, "namesake-same-dob"))
                elif roll < p_same + same_day_namesake_rate(sum(freqs)):
                    pid += 1
                    alt = r.choices(variants, weights=freqs)[0]
                    group.append(self._born_with(base, pid, alt, "homophone-namesake"))
            for person in list(group):
                if r.random() < duplicate_rate:
                    for _ in range(1 if r.random() < 0.8 else 2):
                        out.append(self.duplicate(person))
            out.extend(group)
            pid += 1
        r.shuffle(out)
        return out

    def duplicate(self, p: SyntheticRecord) -> SyntheticRecord:
        r = self.rng
        d = replace(p, record_id=self._rid(), kind="duplicate", tags=[])
        if d.id_number and r.random() < CARD_READ:
            d.tags.append("card-read")  # ID number, name, birth date and sex exact, from the chip
        else:
            self._typed_errors(d)
        roll = r.random()
        if roll < 0.15:
            d.phone = self._phone()
            d.tags.append("new-phone")
        elif roll < 0.23:
            d.phone = None
            d.tags.append("no-phone")
        elif d.phone and roll < 0.25:
            d.phone = _typo(r, d.phone, len(d.phone))
            d.tags.append("phone-typo")
        roll = r.random()
        if d.address and roll < 0.15:
            d.address = d.address[3:]  # city dropped
            d.tags.append("address-short")
        elif roll < 0.25:
            d.address = self._address()
            d.tags.append("moved")
        return d

    def _typed_errors(self, d: SyntheticRecord) -> None:
        """Errors of a record typed by the clerk; rates scaled so that, over all duplicates, each
        error is as frequent as when every record was typed (the card reader moves errors, it
        does not remove them)."""
        r = self.rng
        typed = 1 - CARD_READ * 0.93  # share of duplicates that are typed (93 % of people hold an ID)
        id_typed = 1 - CARD_READ  # share of an ID holder's duplicates that are typed
        roll = r.random()
        if d.id_number and roll < 0.08 / id_typed:
            d.id_number = _typo(r, d.id_number, 17)
            d.tags.append("id-typo")
        elif d.id_number and roll < 0.18 / id_typed:
            d.id_number = None
            d.tags.append("id-missing")
        roll = r.random()
        if roll < 0.10 / typed:
            pos = r.randrange(1, len(d.name))
            alt = _homophone(r, d.name[pos])
            if alt:
                d.name = d.name[:pos] + alt + d.name[pos + 1:]
                d.tags.append("homophone")
        elif roll < 0.18 / typed:
            d.name = (latin_of(d.name) or d.name).replace("^", " ")
            d.tags.append("pinyin-only")
        elif roll < 0.23 / typed:
            d.name = _S2T.convert(d.name)
            d.tags.append("traditional")
        if d.birth_date and r.random() < 0.08 / typed:
            d.birth_date = _date_typo(r, d.birth_date)
            d.tags.append("dob-typo")
        if r.random() < 0.05 / typed:
            d.sex = None


def _typo(r: random.Random, value: str, span: int) -> str:
    """One wrong digit or two neighbours swapped among the first `span` characters (an ID number's
    first 17: the check character stays, so the typed number fails its check)."""
    chars = list(value)
    if r.random() < 0.7:
        i = r.randrange(0, span)
        chars[i] = r.choice([c for c in "0123456789" if c != chars[i]])
    else:
        i = r.randrange(0, span - 1)
        if chars[i] == chars[i + 1]:
            chars[i] = str((int(chars[i]) + 1) % 10)
        else:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def _date_typo(r: random.Random, d: date) -> date:
    if d.day <= 12 and d.month != d.day and r.random() < 0.5:
        return date(d.year, d.day, d.month)
    for _ in range(20):
        text = list(f"{d:%Y%m%d}")
        i = r.choice([3, 5, 7])
        text[i] = r.choice("0123456789")
        try:
            new = date(int("".join(text[:4])), int("".join(text[4:6])), int("".join(text[6:])))
        except ValueError:
            continue
        if new != d:
            return new
    return d + timedelta(days=1)


def true_pairs(records: list[SyntheticRecord]) -> set[frozenset[str]]:
    by_person: dict[int, list[str]] = {}
    for rec in records:
        by_person.setdefault(rec.person_id, []).append(rec.record_id)
    pairs: set[frozenset[str]] = set()
    for ids in by_person.values():
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                pairs.add(frozenset((ids[i], ids[j])))
    return pairs
