"""The Chinese and stable codes of film printing's refusals (imaging_common.problem_texts): the staff's
film review and the patients' share links and self-service kiosks."""

from imaging_common.problem_texts import Texts

# The identity checks a share link asks the patient for.
CHECKS = {"phone": "手机号", "id": "身份证号"}

TEXTS = Texts([
    # films (staff)
    (r"no film (\S+)|no such film", "film-not-found", "没有此胶片"),
    (r"the film's image is missing(?: from the store)?", "film-image-missing", "胶片图像缺失"),
    (r"the film is still being rendered", "film-rendering", "胶片仍在生成中，请稍候"),
    (r"the film was matched anew; its DICOM is being rewritten with that identity", "film-rewriting",
     "胶片刚重新匹配，正在按新的患者信息改写，请稍候"),
    (r"give patient_id, accession_number, study_instance_uid or match_status", "film-filter-required",
     "请给出患者编号、检查号、检查实例 UID 或匹配状态之一"),
    (r"no study with accession number (.+)", "study-not-found", "没有检查号为 {0} 的影像检查"),
    (r"order (\S+) was cancelled: no film can be attached to it", "order-cancelled", "申请单 {0} 已取消，不能关联胶片"),
    (r"the order was cancelled", "order-cancelled", "申请单已取消"),
    (r"only a matched film can be handed over", "film-not-matched", "只有已匹配患者的胶片才能发放"),
    (r"only a matched, stored film goes to the archive", "film-not-archivable", "只有已匹配并已保存的胶片才能归档"),
    (r"no archive is configured \(IMAGING_PRINT_ARCHIVE_AE_TITLE\)", "archive-not-configured",
     "尚未配置归档系统（IMAGING_PRINT_ARCHIVE_AE_TITLE）"),
    # share links (staff create them, patients open them)
    (r"valid_days at most (\S+)", "share-validity-too-long", "有效天数最多 {0} 天"),
    (r"the study has no matched film to share yet", "share-no-film", "此检查还没有可分享的已匹配胶片"),
    (r"no (\S+) on record for this patient: choose another check", "share-check-unavailable",
     "此患者没有登记{0}，请选择其他验证方式", CHECKS),
    (r"no such share", "share-not-found", "分享链接无效或已过期"),
    (r"this link is not valid", "share-link-invalid", "此链接无效或已过期"),
    (r"open the link and answer the identity check first", "share-verification-required", "请先打开链接并完成身份验证"),
    (r"no such film in this share", "film-not-in-share", "此分享中没有该胶片"),
    # kiosks and slips
    (r"kiosk (\S+) exists \(revoked ids are not reused\)", "kiosk-exists", "自助机 {0} 已存在（已注销的编号不再使用）"),
    (r"no such kiosk|unknown kiosk", "kiosk-not-found", "没有此自助机"),
    (r"no such slip", "slip-not-found", "没有此取片凭条"),
    (r"too many kiosk requests from this address", "kiosk-throttled", "此地址的自助机请求过于频繁，请稍后再试"),
    (r"too many requests from this kiosk", "kiosk-throttled", "此自助机的请求过于频繁，请稍后再试"),
    (r"this slip is not valid: please ask at the desk", "slip-invalid", "此取片凭条无效，请到服务台咨询"),
    (r"no films for this slip yet: please ask at the desk", "slip-no-films", "此凭条暂无胶片，请到服务台咨询"),
    (r"no such film on this slip", "film-not-on-slip", "此凭条上没有该胶片"),
    (r"a film given is not on this slip", "film-not-on-slip", "所选胶片中有不属于此凭条的"),
])
