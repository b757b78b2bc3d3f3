//! The frequency tables the generator draws from: names, ethnic groups, religions, blood types
//! and the words of address details. Shares are approximate and meant to look right in a demo,
//! not to stand for official statistics.

use rand::{Rng, RngExt};
use std::sync::LazyLock;

/// Items with integer weights, drawn by a binary search over the cumulative weights.
#[derive(Debug)]
pub(crate) struct Table<T: 'static> {
    items: Vec<T>,
    cumulative: Vec<u32>,
}

impl<T: Copy + 'static> Table<T> {
    pub(crate) fn new(rows: &[(T, u32)]) -> Self {
        let mut total = 0;
        let mut items = Vec::with_capacity(rows.len());
        let mut cumulative = Vec::with_capacity(rows.len());
        for &(item, weight) in rows.iter().filter(|r| r.1 > 0) {
            total += weight;
            items.push(item);
            cumulative.push(total);
        }
        assert!(total > 0, "a table needs a positive weight");
        Self { items, cumulative }
    }

    pub(crate) fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> T {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.random_range(0..total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.items[i.min(self.items.len() - 1)]
    }
}

/// Draws one item of a slice uniformly.
pub(crate) fn one_of<R: Rng + ?Sized, T: Copy>(rng: &mut R, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Family names with their national shares in ‰ (DOMAIN.md). Hoàng/Huỳnh and Vũ/Võ are one
/// name each, written by region (see [`regional_family`]).
const FAMILY_MAIN: [(&str, u32); 14] = [
    ("Nguyễn", 380),
    ("Trần", 110),
    ("Lê", 95),
    ("Phạm", 71),
    ("Hoàng", 51),
    ("Phan", 45),
    ("Vũ", 39),
    ("Đặng", 21),
    ("Bùi", 20),
    ("Đỗ", 14),
    ("Hồ", 13),
    ("Ngô", 13),
    ("Dương", 10),
    ("Lý", 5),
];

/// The other common family names, sharing the rest equally.
const FAMILY_OTHER: [&str; 48] = [
    "Trương", "Đinh", "Lâm", "Mai", "Trịnh", "Đoàn", "Lương", "Cao", "Hà", "Tạ", "Chu", "Lưu",
    "Kiều", "Quách", "Tô", "Thái", "La", "Triệu", "Đào", "Hứa", "Châu", "Tăng", "Lại", "Giang",
    "Phùng", "Doãn", "Mạc", "Khúc", "Vương", "Từ", "Âu", "Ông", "Ưng", "Thân", "Nghiêm", "Diệp",
    "Bạch", "Khổng", "Tôn", "Hàn", "Lục", "Nông", "Đàm", "Hầu", "Tống", "Kim", "Viên", "Quan",
];

/// Share (‰) of minority-group members who carry a name typical of their group rather than one
/// of the national table. The national table is scaled up so the overall shares stay those of
/// DOMAIN.md.
pub(crate) const MINORITY_OWN_NAME_PERMILLE: u32 = 600;

pub(crate) static FAMILY: LazyLock<Table<&'static str>> = LazyLock::new(|| {
    // About 14% of people belong to a minority group and 60% of those take a group name, so the
    // national table covers ~91.6% of people: scale its named shares up by 1/0.916.
    let mut rows: Vec<(&str, u32)> = FAMILY_MAIN
        .iter()
        .map(|(n, w)| (*n, w * 1000 / 916))
        .collect();
    let named: u32 = rows.iter().map(|r| r.1).sum();
    let rest = 1000u32.saturating_sub(named).max(48);
    let each = (rest * 100 / FAMILY_OTHER.len() as u32).max(1);
    for r in &mut rows {
        r.1 *= 100;
    }
    rows.extend(FAMILY_OTHER.iter().map(|n| (*n, each)));
    Table::new(&rows)
});

/// Hoàng → Huỳnh and Vũ → Võ from Quảng Nam southwards (mostly).
pub(crate) fn regional_family<R: Rng + ?Sized>(
    rng: &mut R,
    name: &'static str,
    south: bool,
) -> &'static str {
    let switch = if south {
        rng.random_bool(0.85)
    } else {
        rng.random_bool(0.03)
    };
    match (name, switch) {
        ("Hoàng", true) => "Huỳnh",
        ("Vũ", true) => "Võ",
        _ => name,
    }
}

/// Ethnic groups (dân tộc) the generator knows, by the name the register writes.
pub(crate) const ETHNIC: [&str; 26] = [
    "Kinh",
    "Tày",
    "Thái",
    "Mường",
    "Khmer",
    "Hoa",
    "Nùng",
    "H'Mông",
    "Dao",
    "Gia Rai",
    "Ê Đê",
    "Ba Na",
    "Xơ Đăng",
    "Sán Chay",
    "Cơ Ho",
    "Chăm",
    "Sán Dìu",
    "Hrê",
    "Mnông",
    "Ra Glai",
    "Xtiêng",
    "Bru-Vân Kiều",
    "Thổ",
    "Giáy",
    "Cơ Tu",
    "Khơ Mú",
];

/// Index of the group in [`ETHNIC`].
pub(crate) fn ethnic_index(name: &str) -> usize {
    ETHNIC.iter().position(|e| *e == name).unwrap_or(0)
}

/// Family names typical of a minority group (index into [`ETHNIC`]); empty for Kinh.
pub(crate) fn minority_families(ethnic: usize) -> &'static [&'static str] {
    match ETHNIC.get(ethnic).copied().unwrap_or("Kinh") {
        "Tày" => &["Nông", "Hoàng", "Lục", "Ma", "Bế", "Hà", "Nịnh", "Đàm"],
        "Thái" => &["Lò", "Cầm", "Quàng", "Lường", "Tòng", "Vi", "Hà", "Lù"],
        "Mường" => &["Bùi", "Đinh", "Quách", "Hà", "Xa"],
        "Khmer" => &["Thạch", "Sơn", "Danh", "Kim", "Lâm", "Châu", "Kha", "Trà"],
        "Hoa" => &["Lâm", "Trương", "Lý", "Quách", "Hứa", "Mã", "Lưu", "Tăng"],
        "Nùng" => &["Nông", "Lương", "Hoàng", "Lăng", "Mông", "Chu"],
        "H'Mông" => &["Giàng", "Sùng", "Vàng", "Thào", "Lý", "Hầu", "Mùa", "Lầu"],
        "Dao" => &["Triệu", "Bàn", "Đặng", "Lý", "Chảo", "Phùng"],
        "Gia Rai" => &["Ksor", "Siu", "Nay", "Kpă", "Rcom", "Rơmah"],
        "Ê Đê" => &["Niê", "Êban", "Mlô", "Byă", "Ayun", "Adrơng"],
        "Ba Na" | "Xơ Đăng" | "Hrê" => &["Đinh", "Siu", "Rơ"],
        "Chăm" => &["Đàng", "Thiên", "Lưu", "Quảng", "Trượng"],
        "Mnông" | "Xtiêng" | "Cơ Ho" => &["Điểu", "Ka", "Kră", "Bon"],
        "Cơ Tu" | "Bru-Vân Kiều" => &["Hồ", "Alăng", "Bhnướch", "Pơloong"],
        _ => &[],
    }
}

/// Regions with their own mix of ethnic groups and religions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    /// The northern midlands and mountains.
    NorthMountain,
    /// The Central Highlands and its neighbours.
    Highlands,
    /// The Mekong delta.
    Mekong,
    /// Hồ Chí Minh City.
    Saigon,
    /// The Red River delta and the central coast.
    Lowland,
}

/// Ethnic mix by region, weights in ‰ (names as in [`ETHNIC`]).
fn ethnic_rows(region: Region) -> &'static [(&'static str, u32)] {
    match region {
        Region::NorthMountain => &[
            ("Kinh", 380),
            ("Tày", 150),
            ("Thái", 125),
            ("H'Mông", 135),
            ("Nùng", 85),
            ("Dao", 70),
            ("Mường", 20),
            ("Sán Chay", 15),
            ("Giáy", 10),
            ("Khơ Mú", 10),
        ],
        Region::Highlands => &[
            ("Kinh", 720),
            ("Gia Rai", 85),
            ("Ê Đê", 60),
            ("Ba Na", 40),
            ("Xơ Đăng", 25),
            ("Cơ Ho", 25),
            ("Mnông", 15),
            ("Hrê", 15),
            ("Nùng", 8),
            ("Tày", 7),
        ],
        Region::Mekong => &[
            ("Kinh", 905),
            ("Khmer", 80),
            ("Hoa", 10),
            ("Chăm", 3),
            ("Xtiêng", 2),
        ],
        Region::Saigon => &[
            ("Kinh", 935),
            ("Hoa", 45),
            ("Khmer", 7),
            ("Chăm", 3),
            ("Tày", 4),
            ("Nùng", 3),
            ("Mường", 3),
        ],
        Region::Lowland => &[
            ("Kinh", 958),
            ("Mường", 22),
            ("Thái", 6),
            ("Sán Dìu", 3),
            ("Ra Glai", 3),
            ("Chăm", 2),
            ("Cơ Tu", 2),
            ("Bru-Vân Kiều", 2),
            ("Thổ", 2),
        ],
    }
}

pub(crate) static ETHNIC_BY_REGION: LazyLock<[Table<usize>; 5]> = LazyLock::new(|| {
    let table = |region| {
        let rows: Vec<(usize, u32)> = ethnic_rows(region)
            .iter()
            .map(|(n, w)| (ethnic_index(n), *w))
            .collect();
        Table::new(&rows)
    };
    [
        table(Region::NorthMountain),
        table(Region::Highlands),
        table(Region::Mekong),
        table(Region::Saigon),
        table(Region::Lowland),
    ]
});

pub(crate) fn ethnic_table(region: Region) -> &'static Table<usize> {
    let i = match region {
        Region::NorthMountain => 0,
        Region::Highlands => 1,
        Region::Mekong => 2,
        Region::Saigon => 3,
        Region::Lowland => 4,
    };
    &ETHNIC_BY_REGION[i]
}

/// The religion of a household (tôn giáo), "Không" for none, by ethnic group and region.
pub(crate) fn household_religion<R: Rng + ?Sized>(
    rng: &mut R,
    ethnic: usize,
    region: Region,
) -> &'static str {
    let group = ETHNIC.get(ethnic).copied().unwrap_or("Kinh");
    let x = rng.random_range(0..1000u32);
    let rows: &[(&str, u32)] = match group {
        "Khmer" => &[("Phật giáo", 850)],
        "Hoa" => &[("Phật giáo", 400), ("Công giáo", 30)],
        "Chăm" => &[("Bà La Môn", 400), ("Hồi giáo", 300)],
        "Gia Rai" | "Ê Đê" | "Ba Na" | "Xơ Đăng" | "Mnông" | "Cơ Ho" | "H'Mông" => {
            &[("Tin Lành", 300), ("Công giáo", 150)]
        }
        _ => match region {
            Region::Mekong => &[
                ("Phật giáo", 90),
                ("Hòa Hảo", 80),
                ("Cao Đài", 50),
                ("Công giáo", 50),
                ("Tin Lành", 5),
            ],
            Region::Saigon => &[
                ("Phật giáo", 110),
                ("Công giáo", 100),
                ("Cao Đài", 20),
                ("Tin Lành", 15),
                ("Hòa Hảo", 5),
            ],
            Region::Highlands => &[
                ("Công giáo", 120),
                ("Phật giáo", 50),
                ("Tin Lành", 30),
                ("Cao Đài", 10),
            ],
            Region::NorthMountain | Region::Lowland => {
                &[("Công giáo", 65), ("Phật giáo", 35), ("Tin Lành", 3)]
            }
        },
    };
    let mut acc = 0;
    for (name, w) in rows {
        acc += w;
        if x < acc {
            return name;
        }
    }
    "Không"
}

/// Given names for men: common ones first (drawn three times as often).
pub(crate) const MALE_GIVEN: &[&str] = &[
    "Anh",
    "Minh",
    "Hùng",
    "Dũng",
    "Tuấn",
    "Nam",
    "Hải",
    "Long",
    "Quang",
    "Sơn",
    "Thắng",
    "Hiếu",
    "Huy",
    "Đức",
    "Cường",
    "Phong",
    "Trung",
    "Tùng",
    "Khoa",
    "Bình",
    "Hòa",
    "Thành",
    "Việt",
    "Khánh",
    "Hoàng",
    "Phúc",
    "Quân",
    "Đạt",
    "Lâm",
    "Vinh", // 30 common
    "An",
    "Bảo",
    "Chiến",
    "Công",
    "Duy",
    "Dương",
    "Định",
    "Đông",
    "Giang",
    "Hào",
    "Hậu",
    "Hiệp",
    "Hưng",
    "Khang",
    "Khôi",
    "Kiên",
    "Lộc",
    "Lợi",
    "Luân",
    "Mạnh",
    "Nghĩa",
    "Nhân",
    "Nhật",
    "Phát",
    "Phước",
    "Quốc",
    "Quý",
    "Sang",
    "Tài",
    "Tâm",
    "Tân",
    "Thiện",
    "Thịnh",
    "Thông",
    "Toàn",
    "Trí",
    "Trọng",
    "Trường",
    "Tú",
    "Tường",
    "Vũ",
    "Thuận",
    "Tiến",
    "Tín",
    "Kiệt",
    "Lực",
    "Hiển",
    "Đăng",
    "Đạo",
    "Điệp",
    "Hoan",
    "Huân",
    "Khải",
    "Khiêm",
    "Lập",
    "Mẫn",
    "Nguyên",
    "Ninh",
    "Quyết",
    "Sỹ",
    "Thạch",
    "Tráng",
    "Tuyên",
    "Vỹ",
    "Vượng",
    "Bách",
    "Cảnh",
    "Chính",
    "Chung",
    "Danh",
    "Điền",
    "Kha",
    "Khương",
    "Lĩnh",
    "Nghị",
    "Phi",
    "Quyền",
    "Tấn",
    "Thức",
    "Thưởng",
    "Toản",
    "Tuệ",
    "Tưởng",
    "Uy",
    "Vĩnh",
    "Vương",
    "Đại",
    "Hạnh",
    "Hoạt",
    "Hội",
    "Kỳ",
    "Lượng",
    "Ngọc",
    "Phú",
    "Quế",
    "Sáng",
    "Sinh",
    "Tạo",
    "Thái",
    "Thể",
    "Thủy",
    "Tịnh",
    "Triều",
    "Trực",
    "Tuân",
    "Tuyến",
    "Ân",
    "Bằng",
    "Cần",
    "Chánh",
    "Đoàn",
    "Dinh",
    "Giáp",
    "Hợp",
    "Khoát",
    "Lành",
    "Lý",
    "Năm",
];

/// Given names for women: common ones first (drawn three times as often).
pub(crate) const FEMALE_GIVEN: &[&str] = &[
    "Anh",
    "Linh",
    "Trang",
    "Hương",
    "Hà",
    "Lan",
    "Ngọc",
    "Thảo",
    "Huyền",
    "Hằng",
    "Mai",
    "Phương",
    "Thủy",
    "Hoa",
    "Nhung",
    "Yến",
    "Hạnh",
    "Dung",
    "Nga",
    "Vân",
    "Hiền",
    "Thu",
    "Loan",
    "Oanh",
    "Quỳnh",
    "Trinh",
    "Hòa",
    "Thúy",
    "Nhi",
    "Ly", // 30 common
    "An",
    "Ánh",
    "Bích",
    "Châu",
    "Chi",
    "Diệp",
    "Diệu",
    "Duyên",
    "Giang",
    "Hường",
    "Huệ",
    "Khánh",
    "Khuê",
    "Liên",
    "My",
    "Ngân",
    "Nguyệt",
    "Nhàn",
    "Phượng",
    "Quyên",
    "Tâm",
    "Thanh",
    "Thắm",
    "Thơ",
    "Thùy",
    "Thư",
    "Thương",
    "Trâm",
    "Tuyết",
    "Uyên",
    "Vi",
    "Vy",
    "Xuân",
    "Hảo",
    "Hậu",
    "Hồng",
    "Huế",
    "Khanh",
    "Kiều",
    "Lành",
    "Lệ",
    "Liễu",
    "Lụa",
    "Mận",
    "Mến",
    "Minh",
    "Mơ",
    "Nương",
    "Phấn",
    "Quế",
    "Sen",
    "Thêu",
    "Thoa",
    "Thục",
    "Tươi",
    "Vui",
    "Diễm",
    "Đào",
    "Gấm",
    "Hân",
    "Hoài",
    "Lam",
    "Như",
    "Nhã",
    "Sương",
    "Tiên",
    "Trà",
    "Tú",
    "Ngà",
    "Đoan",
    "Hạ",
    "Kim",
    "Lài",
    "Lựu",
    "Nhạn",
    "Thuận",
    "Trúc",
    "Cúc",
    "Dịu",
    "Đông",
    "Huyên",
    "Hợi",
    "Lụy",
    "Mỹ",
    "Nhiên",
    "Ninh",
    "Phúc",
    "Quý",
    "Sa",
    "Thi",
    "Thoại",
    "Thời",
    "Tín",
    "Trân",
    "Tường",
    "Ý",
    "Hoàn",
    "Khải",
    "Lê",
    "Lộc",
    "Mây",
    "Mỵ",
    "Nhài",
    "Nhị",
    "Nở",
    "Phụng",
    "Quyết",
    "Sáu",
    "Thìn",
    "Thịnh",
    "Tố",
    "Toan",
    "Tuyền",
    "Vinh",
    "Xinh",
    "Yên",
    "Bảo",
];

fn given_table(names: &[&'static str]) -> Table<&'static str> {
    let rows: Vec<(&str, u32)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, if i < 30 { 3 } else { 1 }))
        .collect();
    Table::new(&rows)
}

pub(crate) static MALE_GIVEN_TABLE: LazyLock<Table<&'static str>> =
    LazyLock::new(|| given_table(MALE_GIVEN));
pub(crate) static FEMALE_GIVEN_TABLE: LazyLock<Table<&'static str>> =
    LazyLock::new(|| given_table(FEMALE_GIVEN));

/// Middle names (tên đệm); "" for none, two words where a space is written.
pub(crate) static MIDDLE_MALE_OLD: LazyLock<Table<&'static str>> = LazyLock::new(|| {
    Table::new(&[
        ("Văn", 500),
        ("Đức", 80),
        ("Hữu", 60),
        ("Minh", 60),
        ("Quang", 50),
        ("Đình", 50),
        ("Công", 40),
        ("Xuân", 40),
        ("Ngọc", 30),
        ("Thanh", 30),
        ("Thế", 20),
        ("Trọng", 20),
        ("Quốc", 20),
        ("Bá", 20),
        ("Tiến", 20),
        ("Mạnh", 15),
        ("Khắc", 10),
        ("Hồng", 10),
        ("", 40),
        ("Văn Minh", 5),
        ("Đức Minh", 5),
        ("Hữu Quang", 5),
    ])
});

pub(crate) static MIDDLE_MALE_YOUNG: LazyLock<Table<&'static str>> = LazyLock::new(|| {
    Table::new(&[
        ("Văn", 150),
        ("Minh", 120),
        ("Đức", 100),
        ("Gia", 80),
        ("Quang", 60),
        ("Bảo", 60),
        ("Hoàng", 60),
        ("Quốc", 40),
        ("Thành", 40),
        ("Anh", 40),
        ("Duy", 40),
        ("Nhật", 40),
        ("Tuấn", 30),
        ("Hữu", 30),
        ("Trung", 30),
        ("Công", 30),
        ("Đăng", 30),
        ("Thanh", 30),
        ("Khánh", 20),
        ("", 15),
        ("Hoàng Minh", 15),
        ("Gia Bảo", 10),
        ("Minh Đức", 10),
        ("Ngọc Minh", 5),
    ])
});

pub(crate) static MIDDLE_FEMALE_OLD: LazyLock<Table<&'static str>> = LazyLock::new(|| {
    Table::new(&[
        ("Thị", 700),
        ("Ngọc", 50),
        ("Thu", 40),
        ("Thanh", 40),
        ("Kim", 30),
        ("Hồng", 30),
        ("Minh", 20),
        ("Bích", 20),
        ("Xuân", 20),
        ("Mai", 10),
        ("", 20),
        ("Thị Thu", 15),
        ("Thị Ngọc", 10),
        ("Thị Hồng", 10),
        ("Thị Kim", 10),
        ("Thị Thanh", 5),
    ])
});

pub(crate) static MIDDLE_FEMALE_YOUNG: LazyLock<Table<&'static str>> = LazyLock::new(|| {
    Table::new(&[
        ("Thị", 250),
        ("Ngọc", 100),
        ("Thu", 60),
        ("Thanh", 60),
        ("Minh", 60),
        ("Bảo", 60),
        ("Khánh", 50),
        ("Phương", 50),
        ("Thùy", 40),
        ("Hoài", 30),
        ("Mai", 30),
        ("Diệu", 30),
        ("Hà", 30),
        ("Gia", 30),
        ("Quỳnh", 30),
        ("", 10),
        ("Thị Thu", 25),
        ("Ngọc Bảo", 15),
        ("Thị Ngọc", 15),
        ("Thị Minh", 10),
        ("Bảo Ngọc", 10),
    ])
});

/// ABO/Rh blood types, weights in ‱ (O 42%, B 30%, A 21%, AB 7%; Rh− is rare in Vietnam).
pub(crate) static BLOOD: LazyLock<Table<dancu_domain::person::BloodType>> = LazyLock::new(|| {
    use dancu_domain::person::BloodType as B;
    Table::new(&[
        (B::OPos, 4190),
        (B::BPos, 2990),
        (B::APos, 2090),
        (B::AbPos, 698),
        (B::ONeg, 12),
        (B::BNeg, 8),
        (B::ANeg, 8),
        (B::AbNeg, 4),
    ])
});

/// Street names for urban address details.
pub(crate) const STREETS: [&str; 40] = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Trãi",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Quang Trung",
    "Hùng Vương",
    "Lê Duẩn",
    "Nguyễn Huệ",
    "Phan Đình Phùng",
    "Trần Phú",
    "Lê Hồng Phong",
    "Nguyễn Văn Cừ",
    "Điện Biên Phủ",
    "Bà Triệu",
    "Ngô Quyền",
    "Nguyễn Du",
    "Hoàng Diệu",
    "Phạm Văn Đồng",
    "Võ Thị Sáu",
    "Nguyễn Thị Minh Khai",
    "Cách Mạng Tháng Tám",
    "Lạc Long Quân",
    "Âu Cơ",
    "Tôn Đức Thắng",
    "Nguyễn Chí Thanh",
    "Kim Mã",
    "Giải Phóng",
    "Trường Chinh",
    "Hoàng Hoa Thám",
    "Lê Văn Sỹ",
    "Nam Kỳ Khởi Nghĩa",
    "Chu Văn An",
    "Phan Bội Châu",
    "Nguyễn Thái Học",
    "Lê Thánh Tông",
    "Yên Phụ",
    "Hàng Bạc",
    "Xô Viết Nghệ Tĩnh",
    "Bạch Đằng",
];

/// Names of villages, hamlets and residential groups for rural address details.
pub(crate) const VILLAGES: [&str; 36] = [
    "Đông",
    "Tây",
    "Nam",
    "Bắc",
    "Thượng",
    "Hạ",
    "Trung",
    "Đoài",
    "An Lạc",
    "An Phú",
    "Tân Lập",
    "Tân Hòa",
    "Phú Mỹ",
    "Bình An",
    "Hòa Bình",
    "Thanh Bình",
    "Phú Hòa",
    "Mỹ Lợi",
    "Long Hưng",
    "Vĩnh Phú",
    "Đồng Tâm",
    "Quyết Tiến",
    "Tiền Phong",
    "Thống Nhất",
    "Đoàn Kết",
    "Hưng Thịnh",
    "Phước Lộc",
    "Tân Thành",
    "Bình Thạnh",
    "Hòa Lạc",
    "Mỹ Thủy",
    "Khánh Hội",
    "Lộc Thọ",
    "Yên Thế",
    "Cổ Loa",
    "Phú Thứ",
];

/// Village names of the mountains (bản) and the highlands (buôn, plơi).
pub(crate) const MOUNTAIN_VILLAGES: [&str; 16] = [
    "Nà Lừa",
    "Pác Bó",
    "Nậm Cang",
    "Phố Cũ",
    "Nà Phặc",
    "Khuổi Nặm",
    "Lũng Cú",
    "Sín Chải",
    "Ma Lé",
    "Ea Kao",
    "Ako Dhong",
    "Kon Klor",
    "Đăk Rơ Wa",
    "Ea Tu",
    "Plei Ốp",
    "Tơ Nung",
];
