"""Comparators, Fellegi–Sunter EM, bands and safety rules, on the cases a front desk meets."""

from __future__ import annotations

from datetime import date

from imaging_common.empi import comparators as c
from imaging_common.empi.bands import Band, Thresholds, band_for
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.identifiers import resident_check_char
from imaging_common.empi.matcher import MatchIndex, Scorer, clusters, dedupe
from imaging_common.empi.names import name_form
from imaging_common.empi.record import MatchRecord
from imaging_common.empi.survivorship import SourceRecord, golden_record
from imaging_testing.synthetic import Generator, true_pairs


def rid(region: str, born: str, seq: int) -> str:
    first = f"{region}{born}{seq:03d}"
    return first + resident_check_char(first)


ZHANG = rid("110105", "19850312", 123)


def rec(ref: str, name: str, dob: str | None = "1985-03-12", sex: str | None = "M", idn: str | None = ZHANG,
        phone: str | None = "13812345678", address: str | None = "北京市朝阳区建国路88号3单元502") -> MatchRecord:
    return MatchRecord.build(ref, name=name, birth_date=dob, sex=sex, identifiers=[("resident-id", idn)] if idn else [],
                             phone=phone, address=address)


SCORER = Scorer()


def test_names_fold_traditional_pinyin_and_order() -> None:
    assert name_form("張偉").han == "张伟"
    assert name_form("ZHANG^WEI").key == name_form("张伟").key
    assert name_form("Wei Zhang").sorted_key == name_form("张伟").sorted_key
    assert c.compare_name(rec("a", "张伟"), rec("b", "張偉")) == c.NAME_EXACT
    assert c.compare_name(rec("a", "张伟"), rec("b", "ZHANG WEI")) == c.NAME_PINYIN
    assert c.compare_name(rec("a", "张伟"), rec("b", "张维")) == c.NAME_HOMOPHONE
    assert c.compare_name(rec("a", "SMITH^JONATHAN"), rec("b", "SMITH^JONATHON")) == c.NAME_SIMILAR
    assert c.compare_name(rec("a", "张伟"), rec("b", "李娜")) == c.NAME_DIFFERENT


def test_birth_date_typos_and_swaps() -> None:
    assert c.compare_birth_date(rec("a", "x"), rec("b", "x", dob="1985-12-03")) == c.DOB_NEAR  # day/month swap
    assert c.compare_birth_date(rec("a", "x"), rec("b", "x", dob="1986-03-12")) == c.DOB_NEAR  # one digit
    assert c.compare_birth_date(rec("a", "x"), rec("b", "x", dob="1979-07-01")) == c.DOB_DIFFERENT


def test_id_number_with_one_wrong_digit_or_a_swap_is_near() -> None:
    typo = ZHANG[:10] + ("4" if ZHANG[10] != "4" else "5") + ZHANG[11:]
    swap = ZHANG[:14] + ZHANG[15] + ZHANG[14] + ZHANG[16:]
    assert c.compare_national_id(rec("a", "x"), rec("b", "x", idn=typo)) == c.ID_NEAR
    assert c.compare_national_id(rec("a", "x"), rec("b", "x", idn=swap)) == c.ID_NEAR


def test_same_person_with_an_id_typo_is_linked() -> None:
    typo = ZHANG[:16] + str((int(ZHANG[16]) + 2) % 10) + ZHANG[17]
    pair = SCORER.score(rec("a", "张伟"), rec("b", "张伟", idn=typo, phone=None))
    assert pair.band is Band.LINK, pair.explain(SCORER.model)


def test_homophone_typo_is_linked_only_with_an_agreeing_id() -> None:
    assert SCORER.score(rec("a", "张伟"), rec("b", "张维")).band is Band.LINK
    assert SCORER.score(rec("a", "张伟"), rec("b", "张维", idn=None)).band is Band.REVIEW


def test_pinyin_only_and_traditional_entries_link() -> None:
    assert SCORER.score(rec("a", "张伟"), rec("b", "ZHANG WEI", sex=None)).band is Band.LINK
    assert SCORER.score(rec("a", "张伟"), rec("b", "張偉", address=None)).band is Band.LINK


def test_twin_decision() -> None:
    # Twins: same family name, birth date, address and phone; consecutive ID sequence numbers.
    a = rec("a", "张子涵", idn=rid("110105", "20150601", 121))
    b = rec("b", "张子轩", idn=rid("110105", "20150601", 123))
    pair = SCORER.score(a, b)
    assert pair.band is Band.NEW and pair.reason == "different valid ID numbers"
    # Different valid ID numbers are never linked, even when the names sound the same.
    same_sound_ids = SCORER.score(a, rec("b", "张子寒", idn=rid("110105", "20150601", 123)))
    assert same_sound_ids.band is Band.NEW and same_sound_ids.reason == "different valid ID numbers"
    # Without ID numbers (young children). Parents do not give twins names that sound the same, tones
    # included: 张子涵 / 张子寒 (zǐ hán / zǐ hán) with the same birth date, phone and address is one child
    # whose name was typed through a pinyin input method.
    a2 = rec("a", "张子涵", idn=None)
    linked = SCORER.score(a2, rec("b", "张子寒", idn=None))
    assert linked.band is Band.LINK, linked.explain(SCORER.model)
    assert SCORER.score(a2, rec("b", "张子寒", idn=None, phone=None)).band is Band.LINK  # the address agrees
    # A name that differs by a tone only (hán / hàn) or by a syllable keeps the twin guard: a clerk decides.
    tone = SCORER.score(a2, rec("b", "张子汉", idn=None))
    assert tone.band is Band.REVIEW and "twins" in (tone.reason or "")
    syllable = SCORER.score(a2, rec("b", "张子轩", idn=None))
    assert syllable.band is not Band.LINK
    # The same sound needs the birth date and the phone or address too, and no identifier against it.
    assert SCORER.score(a2, rec("b", "张子寒", idn=None, phone=None, address=None)).band is not Band.LINK
    assert SCORER.score(a2, rec("b", "张子寒", idn=None, dob="2015-06-01")).band is not Band.LINK
    # An ID number that disagrees, even one that fails its check (so no proof of a second person).
    other = rid("440106", "20150601", 48)
    invalid_other = other[:17] + ("0" if other[17] != "0" else "1")
    with_other_id = SCORER.score(a, rec("b", "张子寒", idn=invalid_other))
    assert with_other_id.gamma[3] == c.ID_DIFFERENT and with_other_id.band is not Band.LINK
    card_a = MatchRecord.build("a", name="张子涵", birth_date="1985-03-12", sex="M", phone="13812345678",
                               identifiers=[("hospital-card", "K1")])
    card_b = MatchRecord.build("b", name="张子寒", birth_date="1985-03-12", sex="M", phone="13812345678",
                               identifiers=[("hospital-card", "K2")])
    assert SCORER.score(card_a, card_b).band is not Band.LINK  # two hospital cards: two children


def test_namesakes_born_the_same_day_are_not_linked() -> None:
    a = rec("a", "王芳", sex="F", idn=None, phone="13900000001", address="上海市徐汇区人民路1号")
    b = rec("b", "王芳", sex="F", idn=None, phone="13700000002", address="广州市天河区中山路9号")
    assert SCORER.score(a, b).band is not Band.LINK
    c1 = rec("c", "王芳", sex="F", idn=None, phone=None, address=None)
    assert SCORER.score(a, c1).band is Band.REVIEW  # name + birth date only: a person decides
    d = rec("d", "王芳", sex="F", idn=rid("310104", "19850312", 22), phone=None)
    e = rec("e", "王芳", sex="F", idn=rid("440106", "19850312", 48), phone=None)
    assert SCORER.score(d, e).band is Band.NEW


def _records(people: int, seed: int) -> tuple[list, list[MatchRecord]]:
    records = Generator(seed=seed).population(people)
    return records, [MatchRecord.build(r.record_id, name=r.name, sex=r.sex, birth_date=r.birth_date,
                                       identifiers=[("resident-id", r.id_number)] if r.id_number else [],
                                       phone=r.phone, address=r.address) for r in records]


def test_em_learns_weights_ordered_like_the_evidence() -> None:
    _, mrs = _records(10000, seed=12)
    pairs, model = dedupe(mrs)
    assert model.info["source"] == "EM" and model.info["pairs"] >= 5000
    w = model.weights_table()
    assert w["national_id"]["exact"] > w["national_id"]["one-typo"] > 0 > w["national_id"]["different"]
    assert w["name"]["exact"] > 0 > w["name"]["different"]
    assert w["birth_date"]["exact"] > w["birth_date"]["different"]


def test_small_file_uses_default_weights_and_links_no_twin_or_namesake() -> None:
    records, mrs = _records(3000, seed=11)
    pairs, model = dedupe(mrs)
    assert model.info["source"] != "EM"  # too few pairs to estimate from
    truth = true_pairs(records)
    linked = {frozenset((p.left.ref, p.right.ref)) for p in pairs if p.band is Band.LINK}
    assert len(linked - truth) == 0  # precision 1.0 on this sample
    assert len(linked & truth) / len(truth) > 0.9
    by_id = {r.record_id: r for r in records}
    for pair in linked:  # no twin or namesake ever linked
        a, b = (by_id[x] for x in pair)
        assert a.person_id == b.person_id


def test_estimated_model_round_trips(tmp_path) -> None:
    model = FellegiSunterModel.default()
    model.save(tmp_path / "m.json")
    again = FellegiSunterModel.load(tmp_path / "m.json")
    assert again.weights_table() == model.weights_table()


def test_index_finds_the_typo_duplicate_among_others() -> None:
    index = MatchIndex()
    index.add(rec("a", "张伟"))
    index.add(rec("b", "李娜", dob="1990-01-01", sex="F", idn=rid("310104", "19900101", 22), phone="13911112222"))
    index.add(rec("twin", "张伟", idn=rid("110105", "19850312", 125), phone=None, address=None))
    typo = ZHANG[:3] + str((int(ZHANG[3]) + 1) % 10) + ZHANG[4:]
    found = index.match(rec("new", "張偉", idn=typo, phone=None))
    assert found[0].right.ref == "a" and found[0].band is Band.LINK
    assert all(f.band is not Band.LINK for f in found if f.right.ref == "twin")
    index.remove("a")
    assert all(f.right.ref != "a" for f in index.match(rec("new", "张伟")))


def test_clusters_union_links() -> None:
    groups = clusters(["a", "b", "c", "d"], [("a", "b"), ("b", "c")])
    assert sorted(map(sorted, groups)) == [["a", "b", "c"], ["d"]]


def test_golden_record_survivorship() -> None:
    from datetime import datetime, timedelta
    t0 = datetime(2024, 1, 1)
    records = [
        SourceRecord("1", "his", t0, name="ZHANG WEI", birth_date=date(1985, 3, 21), sex="M", phone="13800000000",
                     identifiers=[{"type": "resident-id", "value": ZHANG, "valid": True}]),
        SourceRecord("2", "registration", t0 + timedelta(days=1), name="张伟", birth_date=date(1985, 3, 21),
                     phone="13900000000", address="北京市朝阳区"),
        SourceRecord("3", "batch", t0 + timedelta(days=2), name="张维", phone=None, address="北京市海淀区"),
    ]
    g = golden_record(records)
    assert g.name == "张伟" and g.name_latin == "ZHANG^WEI"  # characters over pinyin, trust over recency
    assert g.birth_date == date(1985, 3, 12)  # the ID card beats the typed (swapped) date
    assert g.id_number == ZHANG and g.provenance["id_number"] == "1"
    assert g.phone == "13900000000" and g.address == "北京市海淀区"  # most recent


def test_placeholder_phones_are_no_evidence() -> None:
    from imaging_common.empi.record import normalize_phone
    assert normalize_phone("13800000000") is None and normalize_phone("00000000000") is None
    assert normalize_phone("+86 138-1234-5678") == "13812345678"
    a = rec("a", "王芳", sex="F", idn=None, phone="13800000000", address=None)
    b = rec("b", "王芳", sex="F", idn=None, phone="13800000000", address=None)
    assert SCORER.score(a, b).band is Band.REVIEW  # a shared placeholder does not corroborate


def test_weaker_agreement_never_weighs_more_than_stronger() -> None:
    # EM saw no two different people with phones one digit apart: u ~ 0, the raw ratio beats "exact".
    model = FellegiSunterModel.default()
    m = {k: list(v) for k, v in model.m.items()}
    u = {k: list(v) for k, v in model.u.items()}
    m["phone"], u["phone"] = [0.75, 0.02, 0.23], [0.001, 1e-6, 0.999]
    w = FellegiSunterModel(m, u, model.prior).weights_table()
    assert w["phone"]["one-typo"] == w["phone"]["exact"] > 0 > w["phone"]["different"]
    for levels in w.values():
        values = list(levels.values())
        assert values == sorted(values, reverse=True)


def test_generator_ground_truth_is_consistent() -> None:
    from imaging_common.empi.identifiers import parse_resident_id
    records = Generator(seed=3).population(6000)
    for r in records:
        if r.id_number and "id-typo" not in r.tags:
            card = parse_resident_id(r.id_number)  # every untouched ID number is valid...
            if r.kind != "duplicate" or "dob-typo" not in r.tags:
                assert card.birth_date == r.birth_date  # ...and agrees with its holder's birth date
            if r.sex:
                assert card.sex == r.sex
        if "card-read" in r.tags:
            assert not {"homophone", "pinyin-only", "traditional", "dob-typo", "id-typo"} & set(r.tags)
    originals = {r.person_id: r for r in records if r.kind != "duplicate"}
    twins = [r for r in originals.values() if r.kind == "twin"]
    assert twins and all(originals[t.person_id - 1].name != t.name for t in twins)  # twins are named apart
    namesakes = [r for r in originals.values() if r.kind == "namesake-same-dob"]
    assert namesakes and all(originals[n.person_id - 1].birth_date == n.birth_date for n in namesakes)


def test_medical_insurance_number_that_is_the_resident_id_counts_as_the_id() -> None:
    # 社会保障号码 = 公民身份号码: a record from the insurance card reader carries the ID that way.
    by_card = MatchRecord.build("a", name="张伟", identifiers=[("medical-insurance", ZHANG)], phone="13912340000")
    assert by_card.national["resident-id"].value == ZHANG and by_card.birth_date == date(1985, 3, 12)
    typed = rec("b", "张维", phone=None, address=None)  # homophone: links only because an ID agrees
    assert SCORER.score(by_card, typed).band is Band.LINK
    # A city's own insurance number (not ID-shaped) stays a local identifier, never a national one.
    local = MatchRecord.build("c", name="张伟", identifiers=[("medical-insurance", "SZ00012345")])
    assert not local.national and ("medical-insurance", "SZ00012345") in local.local
    # An explicit valid ID number wins over the insurance number.
    other = rid("310104", "19850312", 22)
    both = MatchRecord.build("d", name="张伟", identifiers=[("medical-insurance", other), ("resident-id", ZHANG)])
    assert both.national["resident-id"].value == ZHANG


def _index_with_population(extra: list[MatchRecord]) -> MatchIndex:
    index = MatchIndex()
    _, mrs = _records(3000, seed=21)
    for r in mrs + extra:
        index.add(r)
    return index


# 王伟 is made common in the index (30 people of that name, born on other days); 覃炜婕 is rare.
COMMON = [rec(f"ww{n}", "王伟", dob=f"19{50 + n}-07-0{1 + n % 9}", idn=None, phone=None, address=None)
          for n in range(30)]


def test_name_frequency_weights_common_names_less_than_rare_ones() -> None:
    from imaging_common.empi.frequencies import NameFrequencies
    index = _index_with_population(COMMON)
    freqs, ref = index.frequencies, index.scorer.model.name_frequency_ref
    assert ref is not None
    common, rare = freqs.bits(name_form("王伟"), ref, exclude=1), freqs.bits(name_form("覃炜婕"), ref, exclude=1)
    assert common < 0 < 4 <= rare  # 王伟 is commoner than the typical coinciding name, 覃炜婕 far rarer
    # By sound, WANG WEI is commoner still (王伟, 王维, 王玮...), QIN WEIJIE still rare.
    assert freqs.frequency(name_form("王伟"), script="L") > freqs.frequency(name_form("王伟"))
    assert freqs.bits(name_form("覃炜婕"), ref, exclude=1, script="L") >= 4
    # The pair's own records do not make a name common: only other people's do.
    two = NameFrequencies([rec("a", "覃炜婕"), rec("b", "覃炜婕")])
    assert two.frequency(name_form("覃炜婕"), exclude=2) < two.frequency(name_form("覃炜婕"))
    # Traditional characters count as the same name.
    assert freqs.frequency(name_form("王偉")) == freqs.frequency(name_form("王伟"))


def test_rare_name_and_birth_date_link_a_common_name_never_does() -> None:
    known_rare = rec("rare", "覃炜婕", sex="F", phone="13912345678", address=None)
    known_common = rec("common", "王伟", idn=rid("310104", "19850312", 23), phone="13912340000", address=None)
    index = _index_with_population([*COMMON, known_rare, known_common])
    # The same day, nothing else on file to compare (no ID number typed, no phone, no address).
    rare = index.match(rec("q1", "覃炜婕", sex="F", idn=None, phone=None, address=None))
    assert rare[0].right.ref == "rare" and rare[0].band is Band.LINK, rare[0].explain(index.scorer.model)
    assert rare[0].explain(index.scorer.model)["fields"]["name"]["frequency_bits"] >= 4
    common = [s for s in index.match(rec("q2", "王伟", idn=None, phone=None, address=None)) if s.right.ref == "common"]
    assert common and common[0].band is Band.REVIEW  # its weight is lowered below the link threshold...
    assert common[0].name_bits < 0
    # ...and even weighed as an average name, the guard keeps name + birth date alone for a clerk.
    plain = Scorer().score(rec("q2", "王伟", idn=None, phone=None, address=None), known_common)
    assert plain.band is Band.REVIEW and plain.reason == "only name and birth date agree"
    # The same by pinyin (a record from a system without characters): QIN WEIJIE is rare, WANG WEI is not.
    by_pinyin = index.match(rec("q4", "QIN WEIJIE", sex="F", idn=None, phone=None, address=None))
    assert by_pinyin[0].right.ref == "rare" and by_pinyin[0].band is Band.LINK
    wang = index.match(rec("q5", "WANG WEI", idn=None, phone=None, address=None))
    wang = [s for s in wang if s.right.ref == "common"]
    assert wang and wang[0].band is Band.REVIEW
    # A rare name that differs by a tone (炜 wěi / 维 wéi) is still the twin guard's: never an automatic link.
    twin = index.match(rec("q3", "覃维婕", sex="F", idn=None, phone="13912345678", address=None))
    assert all(s.band is not Band.LINK for s in twin)
    # Read the same, tones included (婕 / 洁: jié), with the phone agreeing: the same person.
    typed = index.match(rec("q6", "覃炜洁", sex="F", idn=None, phone="13912345678", address=None))
    assert typed[0].right.ref == "rare" and typed[0].band is Band.LINK


def test_frequency_weights_in_batch_dedupe() -> None:
    _, mrs = _records(3000, seed=22)
    extra = [*COMMON, rec("r1", "覃炜婕", sex="F", idn=None, phone=None, address=None),
             rec("r2", "覃炜婕", sex="F", idn=None, phone=None, address=None),
             rec("c1", "王伟", idn=None, phone=None, address=None),
             rec("c2", "王伟", idn=None, phone=None, address=None)]
    pairs, model = dedupe(mrs + extra)
    band = {frozenset((p.left.ref, p.right.ref)): p.band for p in pairs}
    assert model.name_frequency_ref is not None
    assert band[frozenset(("r1", "r2"))] is Band.LINK
    assert band[frozenset(("c1", "c2"))] is Band.REVIEW


def test_generator_namesakes_follow_name_frequency() -> None:
    from imaging_testing.synthetic import name_frequency, same_day_namesake_rate
    assert same_day_namesake_rate(name_frequency("王伟")) > 0.01  # the commonest names: a few percent
    assert same_day_namesake_rate(name_frequency("覃炜婕")) < 1e-5  # a rare one: almost never
    records = Generator(seed=4).population(20000, duplicate_rate=0.0)
    namesakes = [r for r in records if r.kind == "namesake-same-dob"]
    mean_f = sum(name_frequency(r.name) for r in records) / len(records)
    assert namesakes and sum(name_frequency(r.name) for r in namesakes) / len(namesakes) > 3 * mean_f


def test_name_frequencies_say_nothing_until_enough_names_are_counted() -> None:
    """A new hospital's first patients: with a handful of names counted, every name looks like
    everyone's (-10 bits) and two records of one person would never even reach the clerk."""
    from imaging_common.empi.frequencies import MIN_NAMES, NameFrequencies
    from imaging_common.empi.names import name_form

    ref = {"H": 0.00024}
    one = MatchRecord.build("1", name="葛珏蓁")
    assert NameFrequencies([one]).bits(name_form("葛珏蓁"), ref, exclude=1) == 0.0
    family, given, last = "王李张刘陈杨", "伟芳娜敏静丽强磊", "军洋勇艳杰娟涛明"
    others = [MatchRecord.build(str(i), name=family[i % 6] + given[i % 8] + last[i // 48 % 8])
              for i in range(MIN_NAMES + 10)]
    counted = NameFrequencies([one, *others])
    assert counted.bits(name_form("葛珏蓁"), ref, exclude=1) > 0  # rarer than the typical coinciding name
    assert counted.bits(name_form("王伟军"), ref, exclude=1) < 0


def _latin(ref: str, family: str, given: str, number: str | None = "7131335", **kw: str | None) -> MatchRecord:
    fields: dict[str, str | None] = {"birth_date": "1970-02-03", "sex": "M", "address": "12 Wattle Street Kirrawee NSW"}
    fields.update(kw)
    return MatchRecord.build(ref, family_name=family, given_name=given,
                             identifiers=[("medical-insurance", number)] if number else [], **fields)  # type: ignore[arg-type]


def test_foreign_names_with_typos_link_but_pinyin_twins_keep_the_guard() -> None:
    a = _latin("a", "SMITH", "JONATHAN")
    # A typo in each part of a Latin-script name that is no pinyin: a typo, weighed like any agreement.
    assert c.compare_name(a, _latin("b", "SMYTH", "JONATHON")) == c.NAME_SIMILAR
    assert SCORER.score(a, _latin("b", "SMYTH", "JONATHON")).band is Band.LINK
    assert SCORER.score(a, _latin("b", "SMYTH", "JONATHON", number=None)).band is Band.LINK  # the address agrees
    assert SCORER.score(a, _latin("b", "JONATHAN", "SMIHT")).band is Band.LINK  # swapped order, one typo
    # A replaced given name (the twins' pattern) with the same social security number: the number decides.
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB")).band is Band.LINK
    # ...but not without it, nor with a number one digit off (twins' numbers are often consecutive).
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number=None)).band is not Band.LINK
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131336")).band is not Band.LINK
    # A name one typo apart with a number one typo apart and the same birth date: one person.
    assert SCORER.score(a, _latin("b", "SMITH", "JONATHON", number="7131353")).band is Band.LINK
    # Pinyin-only records of twins (子涵 / 子航): a letter apart is another syllable, the twin guard's.
    z1 = _latin("z1", "ZHANG", "ZIHAN", number=None, phone="13812345678")
    z2 = _latin("z2", "ZHANG", "ZIHANG", number=None, phone="13812345678")
    assert c.compare_name(z1, z2) == c.NAME_SIMILAR
    assert SCORER.score(z1, z2).band is Band.REVIEW
    # Different sex is never linked by the machine.
    assert SCORER.score(a, _latin("b", "SMYTH", "JONATHON", sex="F")).band is not Band.LINK


def test_same_sound_with_a_birth_date_typo_needs_phone_and_address() -> None:
    a = rec("a", "张子涵", idn=None)
    assert SCORER.score(a, rec("b", "张子寒", idn=None, dob="1985-03-13")).band is Band.LINK
    assert SCORER.score(a, rec("b", "张子寒", idn=None, dob="1985-03-13", address=None)).band is not Band.LINK


def test_a_level_em_never_saw_caps_nothing() -> None:
    # Latin-script files have no pinyin or homophone name levels: EM leaves them at ~0 in both classes.
    # Their 0-bit ratio must not cap the 'similar' level below (a typo in a name is evidence there).
    model = FellegiSunterModel.default()
    m = {k: list(v) for k, v in model.m.items()}
    u = {k: list(v) for k, v in model.u.items()}
    m["name"], u["name"] = [0.80, 1e-6, 1e-6, 0.15, 0.05], [0.01, 1e-6, 1e-6, 0.02, 0.97]
    w = FellegiSunterModel(m, u, model.prior).weights_table()["name"]
    assert w["similar"] > 2 and w["exact"] >= w["pinyin"] >= w["homophone"] >= w["similar"] > 0 > w["different"]


def test_a_latin_name_typed_with_a_space_inside_is_one_typo_away() -> None:
    a = _latin("a", "SNELL", "SOPHIE")
    assert c.compare_name(a, _latin("b", "SNELL", "SOPH IE")) == c.NAME_EXACT  # the same letters in order
    assert c.compare_name(a, _latin("b", "SOPH IE", "SNELL")) == c.NAME_SIMILAR  # and swapped
    assert c.compare_name(a, _latin("b", "SOPHIE", "SNEL")) == c.NAME_SIMILAR
    assert c.compare_name(a, _latin("b", "SNELL", "SO PHIA")) == c.NAME_SIMILAR  # joined, then one typo
    assert c.compare_name(a, _latin("b", "SNELL", "MATILDA")) == c.NAME_DIFFERENT


def test_medical_insurance_numbers_one_typo_apart_but_not_consecutive() -> None:
    a = _latin("a", "SMITH", "JONATHAN")
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number="7131335")) == c.LOCAL_SAME
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number="7131353")) == c.LOCAL_NEAR  # a swap
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number="7191335")) == c.LOCAL_NEAR  # a wrong digit
    # Issued one after the other (twins registered together): the last digit only differs.
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number="7131336")) == c.LOCAL_DIFFERENT
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number="5185238")) == c.LOCAL_DIFFERENT
    assert c.compare_local_id(a, _latin("b", "SMITH", "JONATHAN", number=None)) == c.MISSING


def test_a_replaced_name_part_links_on_a_number_typo_never_on_a_twins_number() -> None:
    a = _latin("a", "SMITH", "JONATHAN")
    # The family name kept, the given name replaced (legacy files), the social security number one swap apart
    # and the birth date the same: one person.
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131353")).band is Band.LINK
    assert SCORER.score(a, _latin("b", "CALEB", "SMYTH", number="7131353")).band is Band.LINK  # either order
    # The twins' pattern: the number consecutive, or another number altogether, or the birth date another.
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131336")).band is not Band.LINK
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="5185238")).band is not Band.LINK
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131353", birth_date="1970-03-02")).band \
        is not Band.LINK
    # No birth date on one side: the number with a typo, with the same address.
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131353", birth_date=None)).band is Band.LINK
    assert SCORER.score(a, _latin("b", "SMITH", "CALEB", number="7131353", birth_date=None,
                                  address="3 Kent Road Gymea NSW")).band is not Band.LINK
    # Nothing of the name kept: not by a number with a typo.
    assert SCORER.score(a, _latin("b", "BROWN", "CALEB", number="7131353")).band is not Band.LINK


def test_a_record_without_a_name_links_on_its_number_and_birth_date() -> None:
    a = _latin("a", "SMITH", "JONATHAN")
    nameless = MatchRecord.build("b", birth_date="1970-02-03", sex="M", address="12 Wattle Street Kirrawee NSW",
                                 identifiers=[("medical-insurance", "7131335")])
    assert SCORER.score(a, nameless).band is Band.LINK
    other_day = MatchRecord.build("b", birth_date="1970-02-04", sex="M", address="12 Wattle Street Kirrawee NSW",
                                  identifiers=[("medical-insurance", "7131335")])
    assert SCORER.score(a, other_day).band is not Band.LINK
    no_number = MatchRecord.build("b", birth_date="1970-02-03", sex="M", address="12 Wattle Street Kirrawee NSW")
    assert SCORER.score(a, no_number).band is not Band.LINK


def test_a_partly_agreeing_address_in_the_same_postcode_corroborates() -> None:
    a = _latin("a", "SMITH", "JONATHAN", number=None, address="12 Wattle Street Kirrawee NSW", postcode="2232")
    moved_within = _latin("b", "SMITH", "JONATHON", number=None, address="12 Wattle Street Gymea NSW",
                          postcode="2232")
    assert c.compare_address(a, moved_within) == 1

    def band(b: MatchRecord) -> Band:  # the rule, whatever the weights (a file's EM weighs a name typo higher)
        return band_for(Thresholds().link + 5, c.compare(a, b), a, b, Thresholds())[0]

    assert band(moved_within) is Band.LINK
    elsewhere = _latin("b", "SMITH", "JONATHON", number=None, address="12 Wattle Street Gymea NSW", postcode="2227")
    assert band(elsewhere) is Band.REVIEW
    # Chinese addresses on the same road of the same district agree in part by their city, district and road.
    x = MatchRecord.build("x", name="王伟", birth_date="1985-03-12", address="北京市朝阳区建国路88号3单元502",
                          postcode="100022")
    y = MatchRecord.build("y", name="王伟", birth_date="1985-03-12", address="北京市朝阳区建国路12号5单元1101",
                          postcode="100022")
    assert c.compare_address(x, y) == 1
    assert band_for(Thresholds().link + 5, c.compare(x, y), x, y, Thresholds())[0] is Band.REVIEW


def test_a_small_latin_script_file_is_weighed_on_its_own_pairs() -> None:
    from imaging_common.empi.matcher import MIN_RECORDS_FOR_EM, min_records_for_em

    latin = [_latin(str(i), "SMITH", "JONATHAN") for i in range(3)]
    chinese = [rec(str(i), "张子涵") for i in range(3)]
    assert min_records_for_em(latin) < min_records_for_em(chinese) == MIN_RECORDS_FOR_EM
    assert min_records_for_em([*latin, *chinese, *chinese]) == MIN_RECORDS_FOR_EM  # mostly Chinese


def test_a_model_saved_before_local_ids_had_a_typo_level_still_loads(tmp_path) -> None:
    import json

    body = FellegiSunterModel.default().to_json()
    body["m"]["local_id"], body["u"]["local_id"] = [0.7, 0.3], [0.01, 0.99]
    del body["m"]["postcode"], body["u"]["postcode"]  # nor postcodes compared
    (tmp_path / "old.json").write_text(json.dumps(body))
    w = FellegiSunterModel.load(tmp_path / "old.json").weights_table()
    assert w["local_id"]["same"] > w["local_id"]["one-typo"] > 0 > w["local_id"]["different"]
    assert w["postcode"]["same"] > 0 > w["postcode"]["different"]


def test_postcodes_compared_when_both_have_one() -> None:
    a = _latin("a", "SMITH", "JONATHAN", postcode="2232")
    assert c.compare_postcode(a, _latin("b", "SMITH", "JONATHAN", postcode="2232")) == 0
    assert c.compare_postcode(a, _latin("b", "SMITH", "JONATHAN", postcode="2322")) == 1  # a swap
    assert c.compare_postcode(a, _latin("b", "SMITH", "JONATHAN", postcode="4000")) == 2
    assert c.compare_postcode(a, _latin("b", "SMITH", "JONATHAN")) == c.MISSING
