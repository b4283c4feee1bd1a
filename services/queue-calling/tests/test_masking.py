from queue_calling.domain.masking import mask_name


def test_middle_characters_hidden() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("张三丰") == "张*丰"
    assert mask_name("欧阳娜娜") == "欧**娜"
    assert mask_name("SMITH^JOHN") == "S***H J**N"
    assert mask_name("李") == "李"


def test_configurable_rule() -> None:
    assert mask_name("张三丰", {"mode": "keep_first"}) == "张**"
    assert mask_name("张三丰", {"mode": "middle", "char": "○"}) == "张○丰"
    assert mask_name("SMITH^JOHN", {"mode": "none"}) == "SMITH JOHN"
