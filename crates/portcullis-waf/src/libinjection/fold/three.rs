// portcullis: the three-token rules of `SqliState::fold_tokens`
// (libinjection_sqli.c's `libinjection_sqli_fold`), moved out of fold.rs.

use super::super::*;

impl<'a> SqliState<'a> {
    /// Applies the first three-token folding rule that matches the tokens at
    /// `left`, exactly matching C's else-if chain. Answers `true` when the
    /// rule ends with C's `continue` (the main loop restarts), `false` when
    /// none matched or the rule falls through (the caller then moves `left`
    /// on by one).
    #[inline]
    pub(super) fn fold_three_tokens(&mut self, left: &mut usize, pos: &mut usize) -> bool {
        let l = *left;

        // FOLD: number operator number -> number - from apply_three_token_fold
        if self.token_vec[l].token_type == TokenType::Number &&
           self.token_vec[l + 1].token_type == TokenType::Operator &&
           self.token_vec[l + 2].token_type == TokenType::Number {
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: operator X operator -> operator (where X != leftparens) - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Operator &&
                  self.token_vec[l + 1].token_type != TokenType::LeftParenthesis &&
                  self.token_vec[l + 2].token_type == TokenType::Operator {
            *left = 0;
            *pos -= 2;
            return true;
        
        // FOLD: logic_operator X logic_operator -> logic_operator - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::LogicOperator &&
                  self.token_vec[l + 2].token_type == TokenType::LogicOperator {
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: variable operator (variable|number|bareword) -> variable - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Variable &&
                  self.token_vec[l + 1].token_type == TokenType::Operator &&
                  (self.token_vec[l + 2].token_type == TokenType::Variable ||
                   self.token_vec[l + 2].token_type == TokenType::Number ||
                   self.token_vec[l + 2].token_type == TokenType::Bareword) {
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: (bareword|number) operator (number|bareword) -> first - from apply_three_token_fold
        } else if (self.token_vec[l].token_type == TokenType::Bareword ||
                   self.token_vec[l].token_type == TokenType::Number) &&
                  self.token_vec[l + 1].token_type == TokenType::Operator &&
                  (self.token_vec[l + 2].token_type == TokenType::Number ||
                   self.token_vec[l + 2].token_type == TokenType::Bareword) {
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: (bareword|number|string|variable) operator :: sqltype -> first (PostgreSQL casting) - from apply_three_token_fold
        } else if (self.token_vec[l].token_type == TokenType::Bareword ||
                   self.token_vec[l].token_type == TokenType::Number ||
                   self.token_vec[l].token_type == TokenType::Variable ||
                   self.token_vec[l].token_type == TokenType::String) &&
                  self.token_vec[l + 1].token_type == TokenType::Operator &&
                  self.token_vec[l + 1].len == 2 && 
                  self.token_vec[l + 1].val[0] == b':' && 
                  self.token_vec[l + 1].val[1] == b':' &&
                  self.token_vec[l + 2].token_type == TokenType::SqlType {
            *pos -= 2;
            *left = 0;
            self.stats_folds += 2; // Only this 3-token rule increments stats_folds (by 2)
            return true;
        
        // FOLD: (bareword|number|string|variable) comma (number|bareword|string|variable) -> first_token - from apply_three_token_fold
        } else if (self.token_vec[l].token_type == TokenType::Bareword ||
                   self.token_vec[l].token_type == TokenType::Number ||
                   self.token_vec[l].token_type == TokenType::String ||
                   self.token_vec[l].token_type == TokenType::Variable) &&
                  self.token_vec[l + 1].token_type == TokenType::Comma &&
                  (self.token_vec[l + 2].token_type == TokenType::Number ||
                   self.token_vec[l + 2].token_type == TokenType::Bareword ||
                   self.token_vec[l + 2].token_type == TokenType::String ||
                   self.token_vec[l + 2].token_type == TokenType::Variable) {
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: (expression|group|comma) + unary_op + leftparens -> remove unary - from apply_three_token_fold
        } else if (self.token_vec[l].token_type == TokenType::Expression ||
                   self.token_vec[l].token_type == TokenType::Group ||
                   self.token_vec[l].token_type == TokenType::Comma) &&
                  self.is_unary_op(&self.token_vec[l + 1]) &&
                  self.token_vec[l + 2].token_type == TokenType::LeftParenthesis {
            // got something like SELECT + (, LIMIT + ( - remove unary operator
            self.token_vec[l + 1] = self.token_vec[l + 2].clone();
            *pos -= 1;
            *left = 0;
            return true;
        
        // FOLD: (keyword|expression|group) + unary_op + (number|bareword|variable|string|function) -> remove unary - from apply_three_token_fold
        } else if (self.token_vec[l].token_type == TokenType::Keyword ||
                   self.token_vec[l].token_type == TokenType::Expression ||
                   self.token_vec[l].token_type == TokenType::Group) &&
                  self.is_unary_op(&self.token_vec[l + 1]) &&
                  (self.token_vec[l + 2].token_type == TokenType::Number ||
                   self.token_vec[l + 2].token_type == TokenType::Bareword ||
                   self.token_vec[l + 2].token_type == TokenType::Variable ||
                   self.token_vec[l + 2].token_type == TokenType::String ||
                   self.token_vec[l + 2].token_type == TokenType::Function) {
            // remove unary operators - select - 1
            self.token_vec[l + 1] = self.token_vec[l + 2].clone();
            *pos -= 1;
            *left = 0;
            return true;
        
        // FOLD: comma + unary_op + (number|bareword|variable|string) -> remove unary, backup - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Comma &&
                  self.is_unary_op(&self.token_vec[l + 1]) &&
                  (self.token_vec[l + 2].token_type == TokenType::Number ||
                   self.token_vec[l + 2].token_type == TokenType::Bareword ||
                   self.token_vec[l + 2].token_type == TokenType::Variable ||
                   self.token_vec[l + 2].token_type == TokenType::String) {
            // interesting case turn ", -1" ->> ",1" PLUS we need to back up one token if possible 
            // to see if more folding can be done - "1,-1" --> "1"
            self.token_vec[l + 1] = self.token_vec[l + 2].clone();
            *left = 0;
            // pos is >= 3 so this is safe
            if *pos >= 3 {
                *pos -= 3;
            }
            return true;
        
        // FOLD: comma + unary_op + function -> remove unary only - from apply_three_token_fold  
        } else if self.token_vec[l].token_type == TokenType::Comma &&
                  self.is_unary_op(&self.token_vec[l + 1]) &&
                  self.token_vec[l + 2].token_type == TokenType::Function {
            // Separate case from above since you end up with
            // 1,-sin(1) --> 1 (1)
            // Here, just do
            // 1,-sin(1) --> 1,sin(1)
            // just remove unary operator
            self.token_vec[l + 1] = self.token_vec[l + 2].clone();
            *pos -= 1;
            *left = 0;
            return true;
        
        // FOLD: bareword . bareword -> bareword (database.table -> table) - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Bareword &&
                  self.token_vec[l + 1].token_type == TokenType::Dot &&
                  self.token_vec[l + 2].token_type == TokenType::Bareword {
            // ignore the '.n' - typically is this databasename.table
            *pos -= 2;
            *left = 0;
            return true;
        
        // FOLD: expression . bareword -> bareword (SELECT . `foo` -> SELECT `foo`) - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Expression &&
                  self.token_vec[l + 1].token_type == TokenType::Dot &&
                  self.token_vec[l + 2].token_type == TokenType::Bareword {
            // select . `foo` --> select `foo`
            self.token_vec[l + 1] = self.token_vec[l + 2].clone();
            *pos -= 1;
            *left = 0;
            return true;
        
        // FOLD: function + leftparens + (not rightparens) -> handle special functions - from apply_three_token_fold
        } else if self.token_vec[l].token_type == TokenType::Function &&
                  self.token_vec[l + 1].token_type == TokenType::LeftParenthesis &&
                  self.token_vec[l + 2].token_type != TokenType::RightParenthesis {
            // whats going on here
            // Some SQL functions like USER() have 0 args
            // if we get User(foo), then User is not a function
            // This should be expanded since it eliminated a lot of false positives.
            let val = self.token_vec[l].value_as_str();
            if self.cstrcasecmp("USER", val) == 0 {
                self.token_vec[l].token_type = TokenType::Bareword;
            }
            // NOTE: C version falls through here - no continue (answers false)
        }
        false
    }
}
