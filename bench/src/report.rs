use crate::Results;
pub fn markdown(r: &Results) -> String {
    format!("{r:#?}")
}
