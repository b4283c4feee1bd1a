-- Dictionary version 1: the common radiology critical values (危急值) of Chinese imaging departments,
-- with RadLex actionable-finding categories (1: minutes, 2: hours, 3: days) and deadlines in minutes.
-- Admins publish later versions through the API; version 1 stays for the values judged by it.
INSERT INTO dictionary_version (version, published_by, note) VALUES (1, 'system', 'initial seed');
INSERT INTO dictionary_item (version, code, name, name_en, modalities, category, notify_minutes, ack_minutes,
                             requires_senior_confirmation) VALUES
 (1, 'TPTX', '张力性气胸', 'tension pneumothorax', '{DX,CR,CT}', 1, 10, 15, false),
 (1, 'AOD', '主动脉夹层', 'aortic dissection', '{CT,MR}', 1, 10, 15, true),
 (1, 'AAA-R', '主动脉瘤破裂', 'ruptured aortic aneurysm', '{CT,US,MR}', 1, 10, 15, true),
 (1, 'ICH', '颅内出血', 'intracranial haemorrhage', '{CT,MR}', 1, 10, 15, false),
 (1, 'HERN', '脑疝', 'cerebral herniation', '{CT,MR}', 1, 10, 15, false),
 (1, 'STROKE', '急性大面积脑梗死', 'acute large-territory cerebral infarction', '{CT,MR}', 1, 10, 15, true),
 (1, 'PE', '肺栓塞', 'pulmonary embolism', '{CT}', 1, 10, 15, true),
 (1, 'GIPERF', '消化道穿孔', 'gastrointestinal perforation', '{DX,CR,CT}', 1, 10, 15, false),
 (1, 'SOR', '腹腔实质脏器破裂出血', 'solid abdominal organ rupture with haemorrhage', '{CT,US}', 1, 10, 15, false),
 (1, 'ECTOP', '宫外孕破裂腹腔出血', 'ruptured ectopic pregnancy', '{US,CT}', 1, 10, 15, false),
 (1, 'TAMP', '心包填塞', 'cardiac tamponade', '{US,CT}', 1, 10, 15, false),
 (1, 'CSPINE', '颈椎骨折伴脊髓损伤', 'cervical spine fracture with cord injury', '{CT,MR,DX}', 1, 10, 15, true),
 (1, 'AIRWAY', '气管/主支气管异物', 'airway foreign body', '{DX,CR,CT}', 1, 10, 15, false),
 (1, 'MESI', '肠系膜血管栓塞', 'acute mesenteric ischaemia', '{CT}', 1, 10, 15, true),
 (1, 'SBO', '急性肠梗阻/肠扭转', 'acute bowel obstruction or volvulus', '{DX,CR,CT}', 2, 60, 120, false),
 (1, 'TORS', '睾丸/卵巢扭转', 'testicular or ovarian torsion', '{US}', 2, 30, 60, false),
 (1, 'MALIG', '新发现疑似恶性肿瘤', 'unexpected finding suspicious of malignancy', '{}', 3, 1440, 4320, false);
